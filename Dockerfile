# Image for web, celery worker and celery beat (docker-compose.yml). PostgreSQL client 15 matches
# the server so pg_dump/pg_restore can read and write its archives.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client-15 zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Bytecode compiled at build time: /app is not writable at run time, so every start (each manage.py
# command, worker, beat) would otherwise compile the project's modules from source again.
RUN python -m compileall -q /app
RUN useradd --system --home /app multipult && mkdir -p /app/var /backups && chown -R multipult /app/var /backups
USER multipult
ENV PYTHONUNBUFFERED=1 BACKUP_DIR=/backups
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --no-input && python manage.py setup_schedules && python manage.py runserver 0.0.0.0:8000"]
