"""Settings for every environment, read from the process environment (12-factor).

Nothing here differs between a laptop and production except what the environment says;
`.env.example` documents every variable.
"""

from pathlib import Path

import environ
from kombu import Exchange, Queue
from kombu.common import Broadcast

from notifier.core import logging as notifier_logging

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
# A local `.env` (never committed) is a convenience for development; the environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# Local state of the embedded default (SQLite file, file broker, beat schedule).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
if DEBUG:
    SECRET_KEY = env.str(
        "DJANGO_SECRET_KEY", default="insecure-development-key-never-in-production"
    )
else:
    # No default: a production process without a real key must not start.
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# -- HTTPS (production) -------------------------------------------------------------------------
# DJANGO_HTTPS=1: the site is reached over HTTPS only, through a proxy that terminates TLS and
# sets X-Forwarded-Proto (and drops any a client sent). Cookies are then secure-only and plain
# HTTP is redirected, except the health checks and /metrics, called over HTTP from inside.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics/?$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
# HSTS is opt-in: browsers remember it for that long, so turn it on once HTTPS is known to work.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "notifier.core",
    "notifier.clients",
    "notifier.mailings",
    "notifier.sending",
    "notifier.ops",
    "notifier.console",
    "notifier.reports",
]

MIDDLEWARE = [
    # First: the request id and the request log line cover everything below.
    "notifier.core.middleware.RequestContextMiddleware",
    # Any view that cannot reach the database answers 503, not a traceback.
    "notifier.core.middleware.DatabaseOutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI) served by the app itself: no web server to set up.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Request bodies are JSON of a few kilobytes; the largest valid one (a filter of 1000 tags of 64
# characters, each character escaped) stays under 1 MiB. Django refuses a larger body before
# reading it, and the answer is a 413 (notifier.core.errors).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Unset or empty: the embedded SQLite file.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share one file: WAL lets readers run beside the
    # writer, IMMEDIATE makes writers queue on the busy timeout instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["notifier.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: one input format to validate, and anything else is a clean 415.
    "DEFAULT_PARSER_CLASSES": ["notifier.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "notifier.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["notifier.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "notifier.api.errors.exception_handler",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Notification service API",
    "DESCRIPTION": (
        "Manage a client directory and mailings; read delivery statistics. "
        "Authenticate with `POST /api/auth/token/`, then send `Authorization: Bearer <token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from this server, not a CDN: /docs/ works offline too.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "notifier.api.schema.forbid_unknown_fields",
        "notifier.api.schema.add_error_responses",
        "notifier.api.schema.add_operations_endpoints",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MessageStatusEnum": "notifier.mailings.models.MessageStatus",
        "MailingStatusEnum": "notifier.mailings.models.Mailing.Status",
    },
}

# -- the dispatch engine ----------------------------------------------------------------------

# The external sending API. The default is the local simulator (`probe` in the Procfile), on
# the port it reads too (`make run` puts it next to the API's PORT).
PROBE_SIM_PORT = env.int("PROBE_SIM_PORT", default=8001)
PROBE_URL = env.str("PROBE_URL", default=f"http://127.0.0.1:{PROBE_SIM_PORT}/v1")
# No default in production: a worker without credentials would only collect 401s.
PROBE_TOKEN = (
    env.str("PROBE_TOKEN", default="local-simulator-token") if DEBUG else env.str("PROBE_TOKEN")
)

SENDING = {
    "PROBE_URL": PROBE_URL,
    "PROBE_TOKEN": PROBE_TOKEN,
    "REQUEST_TIMEOUT": env.float("SENDING_REQUEST_TIMEOUT", default=10.0),
    # The most requests in flight per worker: the send loop finds its limit below this.
    "IN_FLIGHT": env.int("SENDING_IN_FLIGHT", default=1000),
    # Requests per second to the API over all workers; 0: no limit but the provider's.
    "RATE_LIMIT": env.float("SENDING_RATE_LIMIT", default=0.0),
    "BACKOFF_BASE": env.float("SENDING_BACKOFF_BASE", default=1.0),
    "BACKOFF_MAX": env.float("SENDING_BACKOFF_MAX", default=60.0),
    "START_WINDOW": env.float("SENDING_START_WINDOW", default=0.5),
    "END_MARGIN": env.float("SENDING_END_MARGIN", default=0.1),
    "MIN_TIMEOUT": env.float("SENDING_MIN_TIMEOUT", default=1.0),
    "LEASE_MARGIN": env.float("SENDING_LEASE_MARGIN", default=10.0),
    "AUTH_PAUSE": env.float("SENDING_AUTH_PAUSE", default=2.0),
    "DISPATCH_BUDGET": env.float("SENDING_DISPATCH_BUDGET", default=30.0),
    "SHUTDOWN_TIMEOUT": env.float("SENDING_SHUTDOWN_TIMEOUT", default=8.0),
}

# Embedded default: a broker made of files under var/, so that web, worker and beat are
# separate processes with nothing to install. Production: redis://...
BROKER_DIR = VAR_DIR / "broker"
# The host is meaningless to the file transport, but kombu warns at every connection that
# names none ("No hostname was supplied").
FILE_BROKER_URL = "filesystem://localhost/"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=FILE_BROKER_URL)
SENDING_BROADCAST: Exchange | None = None
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # Files are polled: poll often, so that a wake-up takes milliseconds, not a second.
        "polling_interval": 0.05,
    }
else:
    # A dead broker must cost a caller milliseconds, not a hang.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
        "retry_on_timeout": False,
        "visibility_timeout": 300,
    }
    # Every worker also listens to a fan-out exchange (Redis PUB/SUB), so that a wake-up of
    # the send loop can reach all of them at once (notifier.sending.tasks.wake_send_loops).
    # Not on the file broker: it would keep a queue for every worker that ever ran and fill
    # those of the dead. On Redis a dead worker's queue is only ever filled by a restored
    # wake-up, and expires.
    SENDING_BROADCAST = Exchange("dispatch", type="fanout")
# The daily report has a queue of its own, consumed by the `reports` process alone (bin/worker
# excludes it): a slow mail server holds up no mailing.
REPORTS_QUEUE = "reports"
# An explicit routing key: without one Celery binds a queue with the default queue's key.
CELERY_TASK_QUEUES: tuple[Queue, ...] = (
    Queue("celery"),
    Queue(REPORTS_QUEUE, routing_key=REPORTS_QUEUE),
)
if SENDING_BROADCAST is not None:
    CELERY_TASK_QUEUES += (Broadcast("dispatch", exchange=SENDING_BROADCAST, expires=300),)
CELERY_TASK_ROUTES = {"reports.*": {"queue": REPORTS_QUEUE}}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = False  # tasks are wake-ups: losing one costs at most one tick
# No task may run away: the longest, a dispatch, hands over after its budget and then waits
# at most a request timeout for what is in flight. Celery enforces these in prefork pools;
# the engine's thread pool cannot kill a thread, so the send loop keeps its own budget.
CELERY_TASK_SOFT_TIME_LIMIT = int(SENDING["DISPATCH_BUDGET"] + SENDING["REQUEST_TIMEOUT"] + 60)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat's memory of when it last sent each task (nothing depends on it: the tick and the
# reports' check find their work in the database). One file per beat.
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "BEAT_SCHEDULE_FILE", default=str(VAR_DIR / "celerybeat-schedule")
)
CELERY_BEAT_SCHEDULE = {
    "tick": {
        "task": "sending.tick",
        "schedule": env.float("SENDING_TICK_SECONDS", default=1.0),
        # A tick nobody ran in time is worthless: the next one does the same work.
        "options": {"expires": 5},
    },
    # Which daily reports are due, from the database alone: a check lost or doubled (two
    # beats) changes nothing, and one after a downtime sends what fell due meanwhile.
    "reports-check": {
        "task": "reports.check",
        "schedule": env.float("REPORT_CHECK_SECONDS", default=60.0),
        "options": {"expires": 60},
    },
}
CELERY_TIMEZONE = "UTC"

# -- the daily report (notifier/reports) -------------------------------------------------------

# Outgoing mail, as a URL (django-environ): smtp://, smtp+tls:// (STARTTLS), smtp+ssl://, with
# user and password; or consolemail:// (to stdout). Unset: the console in debug mode (`make
# run`), a local mail server on port 25 otherwise.
# Characters of the password other than letters, digits and -._~ are percent-encoded.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
# Seconds any one SMTP operation may block; the task's time limit bounds the whole delivery.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("EMAIL_FROM", default="notifier@localhost")
# Where the report's links point: the console (admin) as its users reach it.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000")
# Parsed and checked by notifier.reports.settings (and `manage.py check`).
REPORTS = {
    "RECIPIENTS": env.list("REPORT_RECIPIENTS", default=[]),
    "TIMEZONE": env.str("REPORT_TIMEZONE", default="UTC"),
    "SEND_AT": env.str("REPORT_SEND_AT", default="08:00"),
    "RETRY_SECONDS": env.float("REPORT_RETRY_SECONDS", default=60.0),
    "MAX_ATTEMPTS": env.int("REPORT_MAX_ATTEMPTS", default=8),
}

# -- metrics (/metrics) -----------------------------------------------------------------------

# The folder where every process of this host (web, workers, beat) writes its metrics, for
# /metrics to add them up (prometheus-client's multiprocess mode). Empty: each process keeps
# its own, and /metrics shows only the web process that answers. Empty it before starting the
# processes, never while one runs (see notifier/core/metrics.py).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics"))
# When set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>`; unset, it is public.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Structured logs (see notifier/core/logging.py): JSON lines in production, readable lines in
# development, on stderr; LOG_FILE (`make run`: var/log/notifier.jsonl) also gets every line
# as JSON, appended by every process. Known secrets are blanked out of every event.
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_SECRETS = [PROBE_TOKEN, SECRET_KEY, METRICS_TOKEN, EMAIL_HOST_PASSWORD]
LOGGING = notifier_logging.logging_config(
    fmt=LOG_FORMAT,
    level=env.str("LOG_LEVEL", default="INFO"),
    secrets=LOG_SECRETS,
    file=env.str("LOG_FILE", default=""),
)
notifier_logging.configure(secrets=LOG_SECRETS)
