# Images of docker-compose.yml. `app` (the default, last stage): web (gunicorn), celery worker and beat,
# and the one-shot migrate service. `postgres`: PostgreSQL 15 with the project beside it, so the server's
# archive_command is the project's own archive_wal (point-in-time recovery works in compose).

FROM postgres:15-bookworm AS postgres
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv zstd \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /app/
RUN python3 -m venv /opt/multipult && /opt/multipult/bin/pip install --no-cache-dir -r /app/requirements.txt
COPY . /app
RUN /opt/multipult/bin/python -m compileall -q /app && mkdir -p /app/var && chown postgres /app/var

FROM python:3.11-slim-bookworm AS app
# PostgreSQL client 15 matches the server, so pg_dump/pg_restore can read and write its archives.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client-15 zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Runtime packages only: tests and tooling are in requirements-dev.txt, never in the image.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Bytecode compiled at build time: /app is not writable at run time, so every start (each manage.py
# command, worker, beat) would otherwise compile the project's modules from source again.
RUN python -m compileall -q /app
# Hashed, compressed static files for WhiteNoise, in the image (no database needed; the key is a
# placeholder for this one command, so no generated key is left in the image).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input -v 0
RUN useradd --system --home /app multipult && mkdir -p /app/var /backups && chown -R multipult /app/var /backups
USER multipult
ENV PYTHONUNBUFFERED=1 BACKUP_DIR=/backups
EXPOSE 8000
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
