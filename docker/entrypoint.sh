#!/bin/sh
# cubelab container entry point: `web`, `worker` or `migrate` (anything else is run as is).
#   web     wait for the database, apply migrations, collect static files, start the reaper
#           in the background (runs whose worker vanished are ended and re-queued even while
#           no worker is up), serve HTTP and websockets with Daphne on :8000
#   worker  a Celery worker for $QUEUES (default cpu); the solo pool so that `docker stop`
#           (SIGTERM) checkpoints the running run and records it `interrupted`
set -eu

wait_for_database() {
    python - <<'PY'
import sys, time
import django
django.setup()
from django.db import connection
for attempt in range(60):
    try:
        connection.ensure_connection()
        sys.exit(0)
    except Exception as error:
        print(f"waiting for the database: {error}", flush=True)
        time.sleep(2)
sys.exit("the database did not answer in 120 s")
PY
}

export DJANGO_SETTINGS_MODULE=webapp.settings
case "${1:-web}" in
    web)
        wait_for_database
        python manage.py migrate --noinput
        python manage.py collectstatic --noinput --verbosity 0
        if [ "${CUBELAB_REAPER_INTERVAL_S:-10}" != 0 ]; then
            python manage.py reap_runs --loop "${CUBELAB_REAPER_INTERVAL_S:-10}" &
        fi
        exec python -m daphne -b 0.0.0.0 -p "${PORT:-8000}" --proxy-headers webapp.asgi:application
        ;;
    worker)
        wait_for_database
        exec celery -A worker worker -Q "${QUEUES:-cpu}" --pool solo --loglevel "${LOG_LEVEL:-INFO}" \
            -n "${WORKER_NAME:-cubelab}@%h" --without-gossip --without-mingle
        ;;
    migrate)
        wait_for_database
        exec python manage.py migrate --noinput
        ;;
    *)
        exec "$@"
        ;;
esac
