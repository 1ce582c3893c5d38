"""cubelab settings: one file, read from the environment, runs with zero configuration.

Every knob has a safe local default (SQLite and a Redis the project starts itself under
``CUBELAB_VAR_DIR``); production sets ``DEBUG=0``, ``SECRET_KEY``, ``ALLOWED_HOSTS``,
``DATABASE_URL`` and ``REDIS_URL``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

# Everything the platform writes at run time lives here: database, uploads, checkpoints,
# the embedded Redis, the dev secret key.
VAR_DIR = Path(os.environ.get("CUBELAB_VAR_DIR") or BASE_DIR / "var").resolve()
MEDIA_ROOT = Path(os.environ.get("CUBELAB_MEDIA_DIR") or VAR_DIR / "media")
CHECKPOINT_DIR = Path(os.environ.get("CUBELAB_CHECKPOINT_DIR") or VAR_DIR / "checkpoints")
CACHE_DIR = Path(os.environ.get("CUBELAB_CACHE_DIR") or VAR_DIR / "cache")  # teacher embeddings
MEDIA_URL = "/media/"  # never served directly: downloads go through authorised views


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG=0")
    # Development only: a random key generated once and kept under var/, so sessions
    # survive restarts and no secret is ever written into the code.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves HTTP and websockets
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "webapp.accounts",
    "webapp.teams",
    "webapp.datasets",
    "webapp.configs",
    "webapp.runs",
    "webapp.pages",
    "webapp.compare",
    "webapp.sweeps",
    "webapp.cubeview",
    "webapp.devices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# SQLite by default; PostgreSQL (or anything dj-database-url reads) through DATABASE_URL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=env_int("DB_CONN_MAX_AGE", 0)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write the same file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions take the write lock up front (no deadlocked upgrades),
    # and a generous timeout waits for the other process instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    DATABASES["default"].setdefault("TEST", {})
    if os.environ.get("CUBELAB_TEST_DB_NAME"):  # a file test DB that subprocesses can share
        DATABASES["default"]["TEST"]["NAME"] = os.environ["CUBELAB_TEST_DB_NAME"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's own auth views under /accounts/ (URL names `login`, `logout`); the sign-in
# template is templates/registration/login.html.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"  # collectstatic's output (production)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [path for path in [BASE_DIR / "static"] if path.is_dir()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed but not hashed: pages work without a prior collectstatic in development
    # and tests; production runs collectstatic (runplatform does it when DEBUG=0).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)

# Uploads: request bodies that are not files stay small; dataset files stream to a
# temporary file past 2.5 MB and are refused past CUBELAB_DATASET_MAX_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
FILE_UPLOAD_PERMISSIONS = 0o640
CUBELAB_DATASET_MAX_BYTES = env_int("CUBELAB_DATASET_MAX_BYTES", 200 * 1024 * 1024)
# Django spools a whole request body to disk before any view runs, so webapp/request_limits.py
# (around the ASGI app) answers 413 past these, before the body is stored: multipart bodies
# (uploads) get the dataset limit plus 1 MiB of framing and form fields; other bodies get
# DATA_UPLOAD_MAX_MEMORY_SIZE.
CUBELAB_REQUEST_MAX_BYTES = env_int("CUBELAB_REQUEST_MAX_BYTES", CUBELAB_DATASET_MAX_BYTES + 1024 * 1024)
CUBELAB_DATASET_MAX_ROWS = env_int("CUBELAB_DATASET_MAX_ROWS", 1_000_000)
CUBELAB_DATASET_MAX_LINE_BYTES = env_int("CUBELAB_DATASET_MAX_LINE_BYTES", 1024 * 1024)


def _redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    from webapp.redis_server import embedded_url  # no Django imports: safe at settings time

    return embedded_url(VAR_DIR)


REDIS_URL = _redis_url()

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Step messages are coalesced by the worker (≤ ~10/s per run), so a small per-channel
        # capacity is plenty; a stalled browser must not grow Redis without bound.
        # socket_timeout above channels-redis's 5 s blocking read: redis-py 8 defaults to
        # exactly 5 s, and the race kills idle websockets with "Timeout reading from".
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 200, "expiry": 30},
    }
}

# Celery: see worker/celery.py for why each of these is set.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 7 * 24 * 3600)
# Ten priority levels per queue (kombu's default is four): Redis keeps one list per level and
# workers drain the most urgent first. A run's 0–9 priority maps onto them (runs/actions.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
                                   "priority_steps": list(range(10)), "queue_order_strategy": "priority"}
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ALWAYS_EAGER = False

# Worker loss (issue 6, webapp/runs/reliability.py): a running run's worker beats its
# heartbeat every HEARTBEAT_INTERVAL seconds; every worker checks every REAPER_INTERVAL
# seconds for runs silent longer than HEARTBEAT_TIMEOUT, marks them `interrupted` and
# re-queues those with a checkpoint (at most MAX_ATTEMPTS claims per run). A dead worker is
# noticed within HEARTBEAT_TIMEOUT + REAPER_INTERVAL seconds.
CUBELAB_HEARTBEAT_INTERVAL_S = env_int("CUBELAB_HEARTBEAT_INTERVAL_S", 5)
CUBELAB_HEARTBEAT_TIMEOUT_S = env_int("CUBELAB_HEARTBEAT_TIMEOUT_S", 30)
CUBELAB_REAPER_INTERVAL_S = env_int("CUBELAB_REAPER_INTERVAL_S", 10)  # 0: no reaper thread in the worker
CUBELAB_MAX_ATTEMPTS = env_int("CUBELAB_MAX_ATTEMPTS", 3)
CUBELAB_CANCEL_GRACE_S = env_int("CUBELAB_CANCEL_GRACE_S", 60)  # then a cancelled run is recorded `cancelled`
# Teacher folders that a config from the web app or API may name (`teachers[].path`, or a
# `name` that is a folder): these roots (separated by `:`), the bundled MiniLM and the Hugging
# Face cache. Anything else is refused at submit with one message, so a config can neither
# make a worker load an arbitrary server folder nor probe which paths exist. The trainer CLI
# (`python -m trainer`) is not restricted. Default: `teachers/` beside the media folder, on the
# data volume every worker mounts (`$CUBELAB_VAR_DIR/teachers`; `/data/teachers` in the image).
CUBELAB_TEACHER_DIRS = [Path(item).expanduser() for item in
                        (os.environ.get("CUBELAB_TEACHER_DIRS") or str(MEDIA_ROOT.parent / "teachers")).split(os.pathsep)
                        if item]
# Pre-flight at submit (webapp/runs/preflight.py): a cube whose estimated training memory
# exceeds its queue's device memory is refused; sustained FLOP/s give the time per epoch.
CUBELAB_QUEUE_MEMORY_GB = {"cpu": env_int("CUBELAB_CPU_MEMORY_GB", 16), "gpu": env_int("CUBELAB_GPU_MEMORY_GB", 24)}
# Until a worker of the queue has measured its device (webapp.devices), these are assumed.
CUBELAB_QUEUE_FLOPS = {"cpu": env_int("CUBELAB_CPU_GFLOPS", 15) * 1e9, "gpu": env_int("CUBELAB_GPU_GFLOPS", 20_000) * 1e9}
# Each worker times a few training steps of the default cube once per device class and queue.
CUBELAB_CALIBRATE_DEVICES = env_bool("CUBELAB_CALIBRATE_DEVICES", True)
# A run still `queued` this long after its last task message gets the message again (0: never).
CUBELAB_REQUEUE_QUEUED_AFTER_S = env_int("CUBELAB_REQUEUE_QUEUED_AFTER_S", 600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated API call then gets 401 + `WWW-Authenticate: Token`
        # (with the session first DRF answers 403, which scripts cannot tell from "forbidden").
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cubelab API",
    "DESCRIPTION": "Datasets, configs and training runs. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: works offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and the docs page answer signed-in users only (the default is AllowAny):
    # they list every endpoint and field to whoever asks.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# The demo account that `load_demo` creates and `runplatform` prints.
CUBELAB_DEMO_USERNAME = "demo"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if not DEBUG:
    # Production sits behind TLS (a proxy sets X-Forwarded-Proto): `check --deploy` is clean.
    # Each can be relaxed from the environment, e.g. SECURE_SSL_REDIRECT=0 on a trusted LAN.
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 3600)  # raise once HTTPS is known to work
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # The browsers' preload list is a hard-to-undo commitment of the whole domain: an
        # operator opts in with SECURE_HSTS_PRELOAD=1, it is not a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
