# One image for every process of the Procfile (web, worker, beat, probe) and the one-shot
# migrate: docker-compose.yml picks the bin/ script each container runs.

# -- build: the dependencies in a virtualenv, and the static files ------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A virtualenv is one folder to copy into the runtime stage, without pip's leftovers.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The pinned requirements alone first: this layer stays cached while only the code changes.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

WORKDIR /app
COPY . .
# Collected once, here, for WhiteNoise to serve (the admin's and /docs/' files). The settings
# want a key when debug is off; this one never leaves the build stage. No metrics folder either.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only PROMETHEUS_MULTIPROC_DIR='' \
    python manage.py collectstatic --noinput --verbosity 0

# -- runtime ---------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# A container's loopback is its own: the web listens on every interface (bin/web's default is
# loopback), and the port is published by whoever runs it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_DEBUG=0 \
    VAR_DIR=/app/var \
    PROMETHEUS_MULTIPROC_DIR=/app/var/metrics \
    BIND_HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# The code belongs to root, read-only for the app. Writable by it: var/ (beat's schedule, the
# metrics folder) and staticfiles/, which bin/web collects again at start when debug is off.
COPY . .
COPY --from=build --chown=app:app /app/staticfiles /app/staticfiles
RUN install -d -o app -g app /app/var

# Numeric, so that a runtime enforcing non-root (runAsNonRoot) can tell.
USER 10001:10001
EXPOSE 8000
# bin/entrypoint empties this container's metrics folder, then runs the command.
ENTRYPOINT ["/app/bin/entrypoint"]
CMD ["bin/web"]
