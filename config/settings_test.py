"""The test suite's settings: the real ones, with a throwaway secret and fast password hashing."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("PROBE_TOKEN", "test-only-probe-token")
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    # The metrics of the tests (and of the workers they start) in a folder of their own, not
    # added up with those of a `make run` in var/metrics.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="notifier-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

from config.settings import *  # noqa: F403
from config.settings import DATABASES, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests render pages without running collectstatic first: no manifest, and WhiteNoise finds
# the files in the apps, as in development, instead of listing a STATIC_ROOT that was never
# collected (and warning "No directory at" for every client). The test runner turns DEBUG
# off, which would otherwise make WhiteNoise expect collected files.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the engine's tests run workers in other threads and processes.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"notifier-test-{os.getpid()}.sqlite3")
    }
