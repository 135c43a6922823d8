"""Tollgate settings: the one place that reads the environment (django-environ).

Every variable has a safe local default so `make demo` runs anywhere; production sets
DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis) and SECRET_KEY. README lists them all.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from billing_project.currencies import CURRENCY_CHOICES as _CURRENCY_CHOICES
from billing_project.currencies import CURRENCY_CODES

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env (written by `make demo`/`make test`, never committed) fills in what the shell lacks.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Development only: never used when DEBUG is off.
    SECRET_KEY = "django-insecure-tollgate-development-only"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "djmoney",
    "django_celery_beat",
    "djstripe",
    "sequences",
    "customers",
    "metrics",
    "plans",
    "invoicing",
    "payments",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "billing_project.urls"
WSGI_APPLICATION = "billing_project.wsgi.application"

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

# SQLite by default so the demo runs anywhere; PostgreSQL in CI and production.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # Usage queries vary wildly in selectivity per subscription: server-side prepared statements
    # let PostgreSQL switch to a generic plan 5-7x slower (see shared/PERFORMANCE.md).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_tollgate")}
else:
    # A file, not memory, so pytest --reuse-db skips the ~80 s of dj-stripe migrations next time.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
IS_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

# --- REST API (Lago-compatible plumbing lives in billing_project/api) ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing_project.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "billing_project.api.pagination.LagoPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "billing_project.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate API",
    "DESCRIPTION": "Usage-based billing. Speaks Lago's public REST API under /api/v1/.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI are public (they describe the API, they hold no data): the browser
    # that opens /api/v1/docs/ has no API key to send.
    "SERVE_AUTHENTICATION": [],
}

# --- Celery: no broker means tasks run eagerly (demo and most tests) ---
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Stripe (dj-stripe) ---
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_LIVE_SECRET_KEY = env.str("STRIPE_LIVE_SECRET_KEY", default="")
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
# Points the Stripe client elsewhere (localstripe in tests). Defined only when set: dj-stripe
# warns (djstripe.W002) whenever the setting exists, even empty.
if env.str("STRIPE_API_HOST", default=""):
    STRIPE_API_HOST = env.str("STRIPE_API_HOST")
DJSTRIPE_WEBHOOK_SECRET = env.str("DJSTRIPE_WEBHOOK_SECRET", default="")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"

# --- Tollgate business settings ---
# How long a signed PDF download link stays valid.
TOLLGATE_PDF_LINK_MAX_AGE = env.int("TOLLGATE_PDF_LINK_MAX_AGE", default=3600)
# Days after the first failed attempt at which a payment is retried automatically.
TOLLGATE_PAYMENT_RETRY_DAYS = env.list("TOLLGATE_PAYMENT_RETRY_DAYS", cast=int, default=[1, 3, 7])
# How far back (hours) the sweep looks for pay-in-advance events left without a fee.
TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS = env.int("TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS", default=24)
# Public base URL used to build absolute links (PDF downloads) outside a request.
TOLLGATE_PUBLIC_URL = env.str("TOLLGATE_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- Outbound webhooks (webhooks app) ---
# Seconds between a failed delivery attempt and the next (each with +-20% jitter); after the last
# one the delivery is `failed` (resend from the admin).
TOLLGATE_WEBHOOK_RETRY_DELAYS = env.list(
    "TOLLGATE_WEBHOOK_RETRY_DELAYS", cast=int, default=[60, 300, 1800, 7200, 21600, 43200]
)
# Seconds a pending delivery may be overdue before the periodic sweep sends its task again (lost).
TOLLGATE_WEBHOOK_SWEEP_GRACE = env.int("TOLLGATE_WEBHOOK_SWEEP_GRACE", default=120)
# Seconds one delivery attempt may take (connect + answer).
TOLLGATE_WEBHOOK_TIMEOUT = env.float("TOLLGATE_WEBHOOK_TIMEOUT", default=10.0)
# Development and tests only: accept endpoint URLs on loopback, private and link-local addresses.
TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS", default=False)
# A PEM file holding the RSA private key that signs X-Lago-Signature (jwt); empty: a key pair is
# generated once and kept in the database, the private key encrypted with a key derived from SECRET_KEY.
TOLLGATE_WEBHOOKS_PRIVATE_KEY_FILE = env.str("TOLLGATE_WEBHOOKS_PRIVATE_KEY_FILE", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# django-money: the currency list is pinned in billing_project/currencies.py, so field choices and
# migrations stay the same whatever babel or py-moneyed release is installed.
CURRENCIES = CURRENCY_CODES
CURRENCY_CHOICES = _CURRENCY_CHOICES
