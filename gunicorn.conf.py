"""gunicorn's settings for the web process (the image's CMD, compose's web service, `start_admin --gunicorn`).

gunicorn reads this file from the working directory; a command-line flag overrides any value here
(`--bind`, and `--workers`, whose default is gunicorn's own WEB_CONCURRENCY variable, else 1).
"""

wsgi_app = "multipult.wsgi:application"
bind = "0.0.0.0:8000"
# Restores and restore tests run in the celery worker, so no request should need more than this.
timeout = 60
graceful_timeout = 30
# Access log and errors on stderr, beside the app's own log lines.
accesslog = "-"
errorlog = "-"
