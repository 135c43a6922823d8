"""Tollgate settings: the one place that reads the environment (django-environ)."""

# Every variable has a safe local default so `make demo` runs anywhere; production sets
# DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis) and SECRET_KEY. README lists them all.

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
    # The finance console: the admin with the dashboard as its index (billing_project/admin_site.py).
    "billing_project.admin_site.TollgateAdminConfig",
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
    "simple_history",
    "axes",
    "billing_project.apps.BillingProjectConfig",
    "customers",
    "metrics",
    "plans",
    "invoicing",
    "payments",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every /api/ request's edge checks (NUL bytes, body size, PATCH, database outages).
    "billing_project.api.middleware.ApiEdgeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Who made each change, for the change history (django-simple-history).
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out admin login.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "billing_project.urls"
# The finance console's dashboard figures and its extra pages (under /admin/console/), named by
# string so billing_project imports no app.
TOLLGATE_DASHBOARD = "payments.admin_views.dashboard_context"
TOLLGATE_CONSOLE_URLS = "payments.admin_views"
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
# The console's covering indexes (INCLUDE columns) are PostgreSQL's; SQLite builds them without
# the extra columns, which is all the demo needs: its warning would only be noise there.
SILENCED_SYSTEM_CHECKS = [] if IS_POSTGRESQL else ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# --- Production safety: safe by default when DEBUG is off, each setting overridable ---
# HTTPS only: cookies never travel over plain http, http is redirected (except the load
# balancer's /health probe), and browsers are told to stay on https (HSTS).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy, e.g. "HTTP_X_FORWARDED_PROTO,https". Unset by default: trusting
# the header is only safe when the proxy always sets (or strips) it.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER is 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https.")
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one user name
# from one address, that pair is locked out for AXES_COOLOFF_HOURS (`manage.py axes_reset`, or
# `axes_reset_username <name>` / `axes_reset_ip <address>`, unlocks at once; README).
AXES_ENABLED = env.bool("AXES_ENABLED", default=not DEBUG)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Proxies in front of the server that append to X-Forwarded-For (0: the client is REMOTE_ADDR).
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)
if AXES_IPWARE_PROXY_COUNT:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

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
    "DEFAULT_AUTHENTICATION_CLASSES": ["customers.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON, checked at the edge: depth, NUL bytes and lone surrogates (billing_project.api.parsers).
    "DEFAULT_PARSER_CLASSES": ["billing_project.api.parsers.LagoJSONParser"],
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
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "billing_project.api.schema.patch_like_put",
        "billing_project.api.schema.document_errors",
    ],
}

# --- Celery: no broker means tasks run eagerly (demo and most tests) ---
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks still take a producer from the pool: an in-memory transport instead of kombu's
    # default amqp:// (kombu warns "No hostname was supplied" for any URL without a host).
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TIMEZONE = "UTC"
# Tasks are idempotent, so a task is acknowledged after it ran (acks_late) and a task whose
# worker process died is given back to the broker (reject_on_worker_lost). Redis redelivers an
# unacknowledged task after the visibility timeout: it must exceed the longest task, which the
# hard time limit bounds (README, "Celery").
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 60, 1)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=900)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT.")
# With the broker down a request must answer as fast as with it up: one connection attempt with a
# short timeout, no publish retries (kombu's default policy added ~0.65 s to every request). The
# task is logged and dropped (billing_project.celery.SweptTask); a periodic sweep does the work.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECT_TIMEOUT", default=0.5)
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "max_retries": 0,  # kombu's ensure_connection before a publish: a single attempt
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": 5,
}
# The worker itself keeps retrying to reach the broker at startup and after a loss.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
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

# --- E-mail (documents sent to customers) ---
# EMAIL_URL in django-environ's form, e.g. smtp+tls://user:pass@smtp.example.com:587; unset: the
# console backend (development: messages are printed). An smtp backend is Tollgate's subclass of
# Django's, which records the recipients a server refused (billing_project.mail).
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
if EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
    EMAIL_BACKEND = "billing_project.mail.RecordingSMTPBackend"
EMAIL_HOST = _email.get("EMAIL_HOST", "") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tollgate <billing@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Tollgate business settings ---
# How long a signed PDF download link stays valid.
TOLLGATE_PDF_LINK_MAX_AGE = env.int("TOLLGATE_PDF_LINK_MAX_AGE", default=3600)
# Days after the first failed attempt at which a payment is retried automatically.
TOLLGATE_PAYMENT_RETRY_DAYS = env.list("TOLLGATE_PAYMENT_RETRY_DAYS", cast=int, default=[1, 3, 7])
# How far back (hours) the sweep looks for pay-in-advance events left without a fee.
TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS = env.int("TOLLGATE_PAY_IN_ADVANCE_SWEEP_HOURS", default=24)
# Public base URL used to build absolute links (PDF downloads) outside a request.
TOLLGATE_PUBLIC_URL = env.str("TOLLGATE_PUBLIC_URL", default="http://127.0.0.1:8000")

# Seconds between a failed e-mail attempt (server unreachable, 4xx) and the next; after the last
# one the message is `failed`. A permanent refusal (5xx) is failed at once.
TOLLGATE_EMAIL_RETRY_DELAYS = env.list("TOLLGATE_EMAIL_RETRY_DELAYS", cast=int, default=[60, 300, 1800, 7200, 21600])

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
    # Without a broker every task runs in the request; its "Task ... succeeded" line is noise there.
    "loggers": {"celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"}},
}

# django-money: the currency list is pinned in billing_project/currencies.py, so field choices and
# migrations stay the same whatever babel or py-moneyed release is installed.
CURRENCIES = CURRENCY_CODES
CURRENCY_CHOICES = _CURRENCY_CHOICES
