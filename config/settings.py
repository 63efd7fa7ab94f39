"""Coffer settings.

Everything that differs between machines comes from environment variables (listed in
docs/operations.md). Defaults are the safe production ones: DEBUG is off unless COFFER_DEBUG
asks for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


DEBUG = env_bool("COFFER_DEBUG")

DATA_DIR = Path(os.environ.get("COFFER_DATA_DIR") or BASE_DIR / "data").resolve()
# Only Coffer's own user may enter the data directory (database, keys): 0700, even if it
# existed before with looser modes. config/database_files.py keeps the SQLite files 0600.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
# Another user's directory (read-only tooling run as someone else) is left as it is.
with contextlib.suppress(PermissionError):
    DATA_DIR.chmod(0o700)


def _development_secret_key() -> str:
    """A random key kept in the data directory, so development sessions survive restarts."""
    path = DATA_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("COFFER_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "COFFER_SECRET_KEY must be set when COFFER_DEBUG is off. Make one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )
    SECRET_KEY = _development_secret_key()

ALLOWED_HOSTS = env_list(
    "COFFER_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)

# Master key ring (key-encryption keys). Parsed and checked by keys/crypto.py.
COFFER_MASTER_KEYS = os.environ.get("COFFER_MASTER_KEYS", "")
COFFER_MASTER_KEY_FILE = Path(os.environ.get("COFFER_MASTER_KEY_FILE") or DATA_DIR / "master.keys")

INSTALLED_APPS = [
    "config.apps.CofferAdminConfig",  # the admin, signed into through allauth
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "lib",
    "keys",
    "audit",
    "workspaces",
    "tokens",
    "access",
    "identities",
    "api",
    "backups",
    "imports",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.NoStoreWhenSignedInMiddleware",
    "workspaces.middleware.LastWorkspaceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.WorkspaceTwoFactorMiddleware",
    "accounts.middleware.TwoFactorSecretErrorMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # The design system's tags ({% when %}) in every template, docs/design.md.
            "builtins": ["lib.templatetags.ui"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "workspaces.context_processors.navigation",
                "accounts.context_processors.signup",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"


def env_seconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ImproperlyConfigured(
            f"{name} must be a whole number of seconds (0 or more), not {value!r}."
        )
    return int(value)


# Persistent connections in production: a new PostgreSQL connection per request costs API
# throughput and CPU (docs/benchmarks.md, "Production defaults"). Each gunicorn thread keeps its
# own, so a server holds up to workers x threads connections. With health checks, a connection
# the database closed meanwhile (a restart, a failover) is replaced at the start of the next
# request instead of failing it. The development server starts a thread per request, which
# would leave a connection behind for each: 0 (one per request) there. So does Django under
# ASGI (COFFER_WEB_SERVER=asgi; Django's docs: disable persistent connections in async mode).
# How gunicorn serves Coffer (gunicorn.conf.py): "wsgi" (gthread workers) or "asgi" (uvicorn
# workers, under which the change feed's long polls wait without a thread: api/urls.py).
COFFER_WEB_SERVER = os.environ.get("COFFER_WEB_SERVER", "").strip().lower() or "wsgi"
_CONN_PER_REQUEST = DEBUG or COFFER_WEB_SERVER == "asgi"
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DATA_DIR / 'coffer.sqlite3'}",
        conn_max_age=env_seconds("COFFER_DB_CONN_MAX_AGE", 0 if _CONN_PER_REQUEST else 60),
        conn_health_checks=True,
    )
}
# The few statements of every API read are prepared once per connection (lib/prepared.py);
# false for a pooler that cannot carry prepared statements (PgBouncer in transaction mode
# before 1.21). psycopg prepares nothing while the connection's prepare_threshold is None
# (Django's default); only lib/prepared.py's cursor asks for it.
COFFER_DB_PREPARED = env_bool("COFFER_DB_PREPARED", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and COFFER_DB_PREPARED:
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work at once; a busy timeout instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        # secure_delete: deleted rows (a token's ciphertext, a workspace's data key) are
        # overwritten with zeros, not left in free pages of the file.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests use a file (not :memory:) so the leak tests can read the bytes a thief would get.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): 5 failed sign-ins for one username from one address lock that
# pair for 15 minutes; a successful sign-in clears the count. Locking the pair (not the username
# alone) stops guessing without letting a stranger lock a colleague out from elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("COFFER_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("COFFER_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_SENSITIVE_PARAMETERS = ["password", "value"]
AXES_CLIENT_IP_CALLABLE = "lib.http.client_ip_address"
AXES_VERBOSE = False  # no start-up banner on every manage.py command (resolve's stderr)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sudo mode (workspaces/reauth.py): sensitive actions ask for the password (or a two-factor
# code) again unless the user signed in or confirmed it within this many minutes.
COFFER_REAUTH_MINUTES = env_positive_int("COFFER_REAUTH_MINUTES", 15)

# --- Team accounts (accounts/): sign-in, sign-up from an invitation, two-factor, password reset.
# django-allauth does the account flows (accounts/adapters.py adapts it to Coffer). Signing in
# is by username; a new account comes from an invitation link, or from the open sign-up page
# only when COFFER_OPEN_SIGNUP is on (off by default: a secrets manager is not for strangers).
COFFER_OPEN_SIGNUP = env_bool("COFFER_OPEN_SIGNUP")
# Invitation links stay valid this many days (accounts/models.py).
COFFER_INVITATION_DAYS = env_positive_int("COFFER_INVITATION_DAYS", 7)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.LoginForm", "signup": "accounts.forms.SignupForm"}
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"  # an invitation link proves the address it was sent to
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True  # one address per account: "Change email" replaces it
ACCOUNT_SESSION_REMEMBER = True  # sessions end as config/sessions.py says, not at browser close
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = 60 * COFFER_REAUTH_MINUTES
ACCOUNT_REAUTHENTICATION_METHODS = ["password", "mfa"]
# The account's address is told of every change to how one signs in: a new password (changed or
# reset), a new address (the old one is told), two-factor turned on or off, new recovery codes.
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Coffer] "
# Sign-ins are counted and locked out by django-axes (above), not by allauth's counters; its
# other limits (password reset mails, sign-ups, re-authentication) stay.
ACCOUNT_RATE_LIMITS = {"login_failed": None, "login": None}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
MFA_FORMS = {
    "activate_totp": "accounts.forms.ActivateTOTPForm",
    "authenticate": "accounts.forms.AuthenticateForm",
    "reauthenticate": "accounts.forms.ReauthenticateForm",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Coffer"
MFA_TOTP_TOLERANCE = 1  # the code of the 30 s before or after counts too: phone clocks drift
MFA_RECOVERY_CODE_COUNT = 10
MFA_RECOVERY_CODES_SHOW_ONCE = True  # shown once after set-up or regeneration, then never
MFA_TRUST_ENABLED = False

# --- Single sign-on for people (accounts/sso.py): one OpenID Connect provider, from these
# settings only (allauth's admin would keep the client secret in the database in plain text).
# The sign-in page then shows "Sign in with <name>"; passwords keep working (owners'
# break-glass path when a workspace requires single sign-on). A first sign-in links to an
# existing account by email only when COFFER_OIDC_SSO_LINK_BY_EMAIL trusts the provider AND it
# says email_verified=true; otherwise it is refused. A new account needs a pending invitation
# for the (verified) address, or COFFER_OPEN_SIGNUP.
COFFER_OIDC_SSO_SERVER_URL = os.environ.get("COFFER_OIDC_SSO_SERVER_URL", "").strip().rstrip("/")
COFFER_OIDC_SSO_CLIENT_ID = os.environ.get("COFFER_OIDC_SSO_CLIENT_ID", "").strip()
COFFER_OIDC_SSO_CLIENT_SECRET = os.environ.get("COFFER_OIDC_SSO_CLIENT_SECRET", "")
COFFER_OIDC_SSO_NAME = os.environ.get("COFFER_OIDC_SSO_NAME", "").strip() or "single sign-on"
COFFER_OIDC_SSO_LINK_BY_EMAIL = env_bool("COFFER_OIDC_SSO_LINK_BY_EMAIL")
if COFFER_OIDC_SSO_SERVER_URL and not COFFER_OIDC_SSO_CLIENT_ID:
    raise ImproperlyConfigured("COFFER_OIDC_SSO_SERVER_URL needs COFFER_OIDC_SSO_CLIENT_ID.")
if COFFER_OIDC_SSO_SERVER_URL and not COFFER_OIDC_SSO_SERVER_URL.startswith("https://"):
    raise ImproperlyConfigured("COFFER_OIDC_SSO_SERVER_URL must be an https URL.")
SOCIALACCOUNT_ADAPTER = "accounts.sso.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS: dict[str, Any] = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        # Whether a first sign-in may join an existing account with the same address; only
        # addresses the provider marks email_verified=true are ever considered (allauth).
        "EMAIL_AUTHENTICATION": COFFER_OIDC_SSO_LINK_BY_EMAIL,
        "APPS": (
            [
                {
                    "provider_id": "sso",
                    "name": COFFER_OIDC_SSO_NAME,
                    "client_id": COFFER_OIDC_SSO_CLIENT_ID,
                    "secret": COFFER_OIDC_SSO_CLIENT_SECRET,
                    "settings": {"server_url": COFFER_OIDC_SSO_SERVER_URL},
                }
            ]
            if COFFER_OIDC_SSO_SERVER_URL
            else []
        ),
    }
}
SOCIALACCOUNT_ONLY = False  # passwords stay: the break-glass path when the provider is down
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_REQUIRED = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"  # only provider-verified addresses get this far
# A matched account gets the provider linked, so later sign-ins do not depend on the address.
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False  # Coffer never calls the provider's APIs: keep no tokens
# Linking or unlinking the provider on /accounts/3rdparty/ asks for sudo mode (the same records
# and window as two-factor settings).
SOCIALACCOUNT_REAUTHENTICATION_REQUIRED = True
SOCIALACCOUNT_LOGIN_ON_GET = False  # the flow starts with a POST (CSRF-checked), not a link
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10

DEFAULT_FROM_EMAIL = os.environ.get("COFFER_EMAIL_FROM", "Coffer <coffer@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("COFFER_MANIFEST_STATIC", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Uploaded files (a token value from a file) stay in memory, at most 64 KiB each: past that only
# their size is counted, for the form's message (tokens/uploads.py). Django's default handlers
# are left out on purpose: this one completes every file, so they would never receive a byte,
# and theirs would write a large upload, secret included, to a temporary file.
FILE_UPLOAD_HANDLERS = ["tokens.uploads.CappedUploadHandler"]


def sso_form_action_origins(server_url: str) -> list[str]:
    """The origin of the single sign-on provider (its authorization endpoint must share it)."""
    if not server_url:
        return []
    parts = urlsplit(server_url)
    return [f"{parts.scheme}://{parts.netloc}"]


# Security headers. A strict CSP: every script and style comes from our own origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    # The sign-in button posts, and the answer redirects to the provider: Chromium checks that
    # redirect against form-action, so the provider's origin is allowed there.
    "form-action": [CSP.SELF, *sso_form_action_origins(COFFER_OIDC_SSO_SERVER_URL)],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Sessions (config/sessions.py): the table keeps only a hash of each key. A session ends after
# COFFER_SESSION_IDLE_MINUTES without a request, and COFFER_SESSION_MAX_DAYS after sign-in
# whatever its activity.
SESSION_ENGINE = "config.sessions"
SESSION_COOKIE_AGE = 60 * env_positive_int("COFFER_SESSION_IDLE_MINUTES", 720)
COFFER_SESSION_MAX_SECONDS = 86_400 * env_positive_int("COFFER_SESSION_MAX_DAYS", 7)
SESSION_COOKIE_SAMESITE = "Lax"
# Session values that grant access (allauth's password-reset key) are stored sealed
# (accounts/sessions.py).
SESSION_SERIALIZER = "accounts.sessions.SealingSerializer"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie

# HTTPS: on by default in production; COFFER_HTTPS=false for a plain-HTTP deployment (or tests).
HTTPS = env_bool("COFFER_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers often probe over plain HTTP
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("COFFER_BEHIND_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("COFFER_CSRF_TRUSTED_ORIGINS", [])

# The HTTP API (api/): the largest template /api/v1/resolve accepts, requests per access key per
# minute, failed authentications per client address and per presented key prefix per minute (an
# address's failures never refuse a valid key); the rate-limit counters live in
# the database unless COFFER_RATELIMIT_REDIS_URL names a Redis server (redis://host:6379/0).
COFFER_API_MAX_BYTES = int(os.environ.get("COFFER_API_MAX_BYTES") or 1024 * 1024)
# The longest output one resolve may produce (API resolve and values, and the default of
# `manage.py resolve --max-output-bytes`): a few references to large tokens cannot make a worker
# hold hundreds of megabytes. Past it: 413, nothing decrypted or output.
COFFER_RESOLVE_MAX_OUTPUT_BYTES = env_positive_int(
    "COFFER_RESOLVE_MAX_OUTPUT_BYTES", 16 * 1024 * 1024
)
COFFER_API_RATE_LIMIT = int(os.environ.get("COFFER_API_RATE_LIMIT") or 600)
COFFER_API_AUTH_FAILURE_LIMIT = int(os.environ.get("COFFER_API_AUTH_FAILURE_LIMIT") or 20)
COFFER_RATELIMIT_REDIS_URL = os.environ.get("COFFER_RATELIMIT_REDIS_URL", "")
# Workload identities (identities/): the minutes a credential from POST /api/v1/auth/oidc
# lasts; and, for development only, OIDC issuers on plain http (any address).
COFFER_OIDC_CREDENTIAL_MINUTES = env_positive_int("COFFER_OIDC_CREDENTIAL_MINUTES", 15)
if COFFER_OIDC_CREDENTIAL_MINUTES > 60:
    raise ImproperlyConfigured("COFFER_OIDC_CREDENTIAL_MINUTES is at most 60.")
COFFER_OIDC_ALLOW_INSECURE_ISSUERS = env_bool("COFFER_OIDC_ALLOW_INSECURE_ISSUERS")
if COFFER_OIDC_ALLOW_INSECURE_ISSUERS and not DEBUG:
    raise ImproperlyConfigured(
        "COFFER_OIDC_ALLOW_INSECURE_ISSUERS is for development and tests: it needs COFFER_DEBUG=1."
    )
COFFER_RATELIMIT_REDIS_PREFIX = os.environ.get("COFFER_RATELIMIT_REDIS_PREFIX", "coffer")

# Django's cache holds what every app process (gunicorn workers, several servers) must share:
# allauth's used two-factor codes and its rate limits. It lives in the database (the table
# coffer_cache, made by migrate: accounts.SharedCacheEntry), or on Redis with the API's
# counters when COFFER_RATELIMIT_REDIS_URL is set. Never a per-process memory cache.
CACHES: dict[str, dict[str, Any]]
if COFFER_RATELIMIT_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": COFFER_RATELIMIT_REDIS_URL,
            "KEY_PREFIX": f"{COFFER_RATELIMIT_REDIS_PREFIX}:cache",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "coffer_cache",
            # Past MAX_ENTRIES live entries it drops a third of them in key order, used codes
            # first (Django's default is 300): entries live minutes, so this is never reached
            # but by a flood, and a flood must not make a used code work again.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# Token history (tokens/models.py, TokenVersion): how many versions of a value each token keeps,
# the current one included; older ones are destroyed when a new value is set.
COFFER_TOKEN_VERSIONS = env_positive_int("COFFER_TOKEN_VERSIONS", 10)
# Distinct source names kept per token and context in its usage; later new names count as
# "(other)" (a caller cannot grow the usage table without bound by inventing names).
COFFER_USAGE_SOURCES = env_positive_int("COFFER_USAGE_SOURCES", 100)
# A read appends a usage record; the reading process folds the records into usage counts at
# most once every this many seconds (0: after every read). Pages fold what is pending before
# showing usage (tokens/usage.py).
COFFER_USAGE_ROLLUP_SECONDS = env_seconds("COFFER_USAGE_ROLLUP_SECONDS", 1)
# A read's audit event and usage record commit without waiting for PostgreSQL's WAL to reach
# the disk (it does within 0.6 s); 1 waits on every read (README: the read path).
COFFER_DURABLE_READS = env_bool("COFFER_DURABLE_READS")

# Error reports (the DEBUG page, mails to ADMINS) hide token values and key material, DEBUG or not.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reporting.CofferExceptionReporterFilter"

# Every handler writes a mailed link's key (invitation, password reset, email confirmation) as
# `[redacted]` (config/log_redaction.py): the request lines of the development server, Django's
# "Not Found: <path>" and the rest. Django's own "django" and "django.server" loggers are given
# these handlers instead of its defaults (which would print the same lines unfiltered).
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "secret_paths": {"()": "config.log_redaction.RedactSecretPaths"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["secret_paths"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["secret_paths"],
        },
        "mail_admins": {
            "level": "ERROR",
            "class": "config.log_redaction.RedactingAdminEmailHandler",
            "filters": ["require_debug_false", "secret_paths"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("COFFER_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
        # Lockouts and repeated failures are warnings; the per-sign-in chatter is not logged.
        "axes": {"level": "WARNING"},
    },
}

# --- Log format (ops): COFFER_LOG_FORMAT=json writes one JSON object per line for log shippers
# (config/json_logs.py; gunicorn.conf.py does the same for gunicorn's own logs). ---------------
COFFER_LOG_FORMAT = os.environ.get("COFFER_LOG_FORMAT", "").strip().lower() or "text"
if COFFER_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(
        f"COFFER_LOG_FORMAT must be text or json, not {os.environ['COFFER_LOG_FORMAT']!r}."
    )
if COFFER_LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "config.json_logs.JsonFormatter"}
    for handler in ("console", "django.server"):
        LOGGING["handlers"][handler]["formatter"] = "json"

# Outgoing mail (password resets, reminders, error reports to ADMINS): printed to the console in
# development, sent through an SMTP server (localhost:25 unless COFFER_EMAIL_HOST/PORT say
# otherwise) in production; written as files to COFFER_EMAIL_FILE_PATH when that is set (a
# staging machine with no mail server, or a test that runs the worker as its own process).
MAILERS = {
    "default": {
        "BACKEND": (
            "django.core.mail.backends.console.EmailBackend"
            if DEBUG
            else "django.core.mail.backends.smtp.EmailBackend"
        ),
        **(
            {}
            if DEBUG
            else {
                "OPTIONS": {
                    "host": os.environ.get("COFFER_EMAIL_HOST", "localhost"),
                    "port": int(os.environ.get("COFFER_EMAIL_PORT", "25")),
                    "username": os.environ.get("COFFER_EMAIL_USER", ""),
                    "password": os.environ.get("COFFER_EMAIL_PASSWORD", ""),
                    "use_tls": env_bool("COFFER_EMAIL_USE_TLS"),
                }
            }
        ),
    }
}
if os.environ.get("COFFER_EMAIL_FILE_PATH"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": os.environ["COFFER_EMAIL_FILE_PATH"]},
        }
    }

# --- Notifications (notifications/): the background worker, expiry reminders, webhooks --------
# Background work runs in a separate process, `manage.py db_worker` (Django's django.tasks with
# the django-tasks-db database backend: the queue is a table, no other server is needed).
INSTALLED_APPS += ["django_tasks_db", "notifications"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Links in mails (reminders, a paused webhook) start with this.
COFFER_BASE_URL = os.environ.get("COFFER_BASE_URL", "http://127.0.0.1:8000")


def env_days(name: str, default: list[int]) -> list[int]:
    items = env_list(name, [str(day) for day in default])
    if not all(item.isdigit() and int(item) <= 3650 for item in items):
        raise ImproperlyConfigured(
            f"{name} is a comma-separated list of whole days, 0 to 3650 (e.g. 30,7,1,0)."
        )
    return [int(item) for item in items]


COFFER_REMINDER_DAYS = env_days("COFFER_REMINDER_DAYS", [30, 7, 1, 0])
# Webhook URLs must be https and resolve to public addresses, unless this allows private ones
# (loopback, 10/8, ...) for development and tests.
COFFER_WEBHOOK_ALLOW_PRIVATE = env_bool("COFFER_WEBHOOK_ALLOW_PRIVATE")
# Development only (on with DEBUG, never otherwise): a receiver on this machine
# (http:// or https:// to 127.0.0.1, localhost or [::1]) may be added, to try webhooks out.
COFFER_WEBHOOK_ALLOW_LOCAL = DEBUG
COFFER_WEBHOOK_TIMEOUT = env_positive_int("COFFER_WEBHOOK_TIMEOUT", 10)
COFFER_WEBHOOK_CA_FILE = os.environ.get("COFFER_WEBHOOK_CA_FILE", "")
COFFER_WEBHOOK_RETRY_BASE = 30  # seconds before the first retry, doubling after each
COFFER_WEBHOOK_RETRY_SECONDS = 24 * 3600  # retries stop, and a failing webhook is paused, after
