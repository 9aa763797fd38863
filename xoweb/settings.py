"""xoweb settings: everything comes from the environment, with safe defaults.

A new checkout runs with no configuration at all: SQLite and generated secrets under ``var/``,
Redis on the port that ``make run`` starts it on, with the password it generates. Production sets
``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``ALLOWED_HOSTS`` and ``XOWEB_HTTPS`` (see the
README and docs/security.md).
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from xoweb.env import envbool, envint, envlist, envstr
from xoweb.files import secure_var_dir
from xoweb.secrets import read_or_create_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("XOWEB_VAR_DIR", str(BASE_DIR / "var")))
# First of all: everything this process creates from now on is owner-only, and a var/ left
# readable by others is tightened (docs/security.md §Files).
secure_var_dir(VAR_DIR)

SECRET_KEY = envstr("SECRET_KEY") or read_or_create_secret(VAR_DIR / "secret_key")
DEBUG = envbool("DEBUG", default=False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1", "http://localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "xoweb",
    "pools",
    "backups",
    "tasks",
    # Last: its post_migrate handler gives the groups the permissions of every app above.
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files are served before the login is checked: they hold no data.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a form or a query: refuse what is not text (docs/security.md).
    "xoweb.middleware.RejectUnreadableInput",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a login unless it says otherwise (accounts/access.py).
    "accounts.middleware.LoginRequired",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "xoweb.urls"
WSGI_APPLICATION = "xoweb.wsgi.application"

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
                "xoweb.context_processors.links",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL names another (PostgreSQL in production).
_SQLITE_OPTIONS = {
    # Workers, beat, the watcher and the web process share one file: wait for locks instead of
    # failing, take the write lock at BEGIN so that two writers never deadlock on an upgrade,
    # and let readers run beside the writer.
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = dict(_SQLITE_OPTIONS)
    # Tests run real worker processes, so the test database must be a file they can open.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Logins, sessions and HTTPS (docs/security.md) -----------------------------------------------
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
SESSION_COOKIE_AGE = envint("XOWEB_SESSION_HOURS", 12, minimum=1) * 3600

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out login before a password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT failures of one user name from one address, that
# pair is locked out for the cool-off time; other users and addresses are not (so nobody can
# lock the administrator out from elsewhere). A success resets the count.
AXES_FAILURE_LIMIT = envint("XOWEB_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("XOWEB_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_address"

# XOWEB_HTTPS=1: xoweb is served over HTTPS by a reverse proxy that sets X-Forwarded-Proto and
# X-Forwarded-For (README, "Production"). Cookies then travel only over HTTPS, browsers are told
# to use nothing else (HSTS), and a plain-HTTP request is redirected, except the health check
# that a load balancer may make from inside.
HTTPS = envbool("XOWEB_HTTPS", default=False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = envint("XOWEB_HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and envbool("XOWEB_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = HTTPS and envbool("XOWEB_HSTS_PRELOAD", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Error pages and reports hide sensitive POST parameters and variables even with DEBUG on, and
# the settings that carry the Redis password in a URL.
DEFAULT_EXCEPTION_REPORTER_FILTER = "xoweb.reporting.AlwaysSafeExceptionReporterFilter"

# Ports of the processes `make run` starts (Procfile); the navigation bar links to Flower.
REDIS_PORT = envint("XOWEB_REDIS_PORT", 6380, minimum=1)
FLOWER_PORT = envint("XOWEB_FLOWER_PORT", 5555, minimum=1)
FLOWER_URL = envstr("FLOWER_URL", f"http://127.0.0.1:{FLOWER_PORT}/")
# The simulated pool `make run` starts as its demo (Procfile `simulator`, `manage.py demo_pool`).
DEMO_POOL_PORT = envint("XOWEB_DEMO_POOL_PORT", 8480, minimum=1)
DEMO_POOL_PASSWORD = envstr("XOWEB_DEMO_POOL_PASSWORD", "xapisim")

# --- Celery -------------------------------------------------------------------------------------
# The delivery policy is chosen per task (xoweb/delivery.py; README, "Workers and redelivery"):
# * short tasks, the default: acknowledged when a worker process starts them, with a time limit
#   of XOWEB_TASK_TIME_LIMIT; a task whose worker dies is not run again (they are periodic, or
#   asked again by a person);
# * backup tasks (@backup_task): acknowledged when they return and given back to the broker when
#   their worker process dies, on the `backups` queue, with a time limit of
#   XOWEB_BACKUP_MAX_HOURS; they claim their run row in the database and keep it alive with a
#   heartbeat, so a second delivery of a run that is alive ends at once.
# The visibility timeout is the Redis transport's, shared by every task: short, so that the
# backups of a worker host that died come back within minutes; a backup running longer than it
# is handed out a second time, and that delivery finds its run claimed and alive.
# `make run`'s Redis requires the password generated into var/redis_password (the Redis wrapper
# reads the same file); a REDIS_URL given by the user is used as it is.
REDIS_URL = envstr("REDIS_URL") or (
    f"redis://:{quote(read_or_create_secret(VAR_DIR / 'redis_password'), safe='')}"
    f"@127.0.0.1:{REDIS_PORT}/0"
)
TASK_TIME_LIMIT = envint("XOWEB_TASK_TIME_LIMIT", 300, minimum=1)
BACKUP_MAX_HOURS = envint("XOWEB_BACKUP_MAX_HOURS", 48, minimum=1)
BACKUP_TIME_LIMIT = BACKUP_MAX_HOURS * 3600
# The soft limit raises inside the run first, so that it can record that it was stopped and
# clean up before the hard limit kills its process.
BACKUP_SOFT_TIME_LIMIT = BACKUP_TIME_LIMIT - 300
BROKER_VISIBILITY_SECONDS = envint("XOWEB_BROKER_VISIBILITY_SECONDS", 900, minimum=1)
if BROKER_VISIBILITY_SECONDS <= TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"XOWEB_BROKER_VISIBILITY_SECONDS={BROKER_VISIBILITY_SECONDS} must be longer than "
        f"XOWEB_TASK_TIME_LIMIT={TASK_TIME_LIMIT}: a short task's message waiting behind a running "
        "one would be handed out twice"
    )

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = False  # short tasks; backup tasks set it (xoweb/delivery.py)
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMIT
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's prefork pool, replacing a child process that exited within 50 ms (xoweb/pool.py).
CELERY_WORKER_POOL = "xoweb.pool:TaskPool"
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_SECONDS,
    # Every worker looks for messages past their visibility timeout this often (kombu's default
    # is every 100 s), so a dead host's backups come back soon after the timeout.
    "unacked_restore_interval": max(1, min(10, BROKER_VISIBILITY_SECONDS // 10)),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = ("xoweb.delivery.route",)
CELERY_IMPORTS = ["xoweb.diagnostics"]
# django-celery-beat's database scheduler, stamping the firings of backup schedules (xoweb/beat.py).
CELERY_BEAT_SCHEDULER = "xoweb.beat:Scheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django-axes says "BEGIN" at every start of every process; failures and lock-outs
        # (warnings) still show.
        "axes": {"level": "WARNING"},
    },
}

# --- Pools: the XAPI client, the watcher and its object cache (pools app) ------------------------
# Seconds a lost pool's cached objects stay (greyed as stale) before they are purged; 0 purges
# at once, like Xen Orchestra 5.56.
POOL_STALE_GRACE_SECONDS = envint("POOL_STALE_GRACE_SECONDS", 60, minimum=0)
# Fernet key for pool passwords at rest; empty derives one from SECRET_KEY (pools/crypto.py).
POOL_CREDENTIALS_KEY = envstr("XOWEB_CREDENTIALS_KEY")
# Timeout of every XAPI call, and of the form's synchronous connection test.
POOL_XAPI_TIMEOUT = envint("POOL_XAPI_TIMEOUT", 30, minimum=1)
POOL_CONNECTION_TEST_TIMEOUT = envint("POOL_CONNECTION_TEST_TIMEOUT", 5, minimum=1)
# How long one event.from call waits on the pool when nothing happens.
POOL_EVENT_TIMEOUT = envint("POOL_EVENT_TIMEOUT", 30, minimum=1)
# How often the watcher re-reads the pool table and writes its heartbeat, and when pages call
# a watcher whose heartbeat is older than this dead.
POOL_WATCHER_POLL_SECONDS = envint("POOL_WATCHER_POLL_SECONDS", 2, minimum=1)
POOL_WATCHER_HEARTBEAT_TIMEOUT = envint("POOL_WATCHER_HEARTBEAT_TIMEOUT", 15, minimum=1)
# Longest wait between two reconnection attempts (the backoff doubles up to it).
POOL_RECONNECT_MAX_SECONDS = envint("POOL_RECONNECT_MAX_SECONDS", 30, minimum=1)

# --- Tasks: heartbeat, interruption and retention of the task tree (tasks app) -------------------
# A process running tasks touches them every TASK_HEARTBEAT_SECONDS; a running task whose last
# heartbeat is older than TASK_INTERRUPTED_AFTER_SECONDS belonged to a process that died, and
# is shown (then swept) as interrupted. The timeout must leave room for two missed beats.
TASK_HEARTBEAT_SECONDS = envint("TASK_HEARTBEAT_SECONDS", 10, minimum=1)
TASK_INTERRUPTED_AFTER_SECONDS = envint("TASK_INTERRUPTED_AFTER_SECONDS", 60, minimum=2)
if TASK_INTERRUPTED_AFTER_SECONDS < 2 * TASK_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"TASK_INTERRUPTED_AFTER_SECONDS={TASK_INTERRUPTED_AFTER_SECONDS} must be at least twice "
        f"TASK_HEARTBEAT_SECONDS={TASK_HEARTBEAT_SECONDS}, or live tasks would turn interrupted"
    )
# Finished task trees older than this are deleted by the periodic prune.
TASK_RETENTION_DAYS = envint("TASK_RETENTION_DAYS", 30, minimum=1)

# --- Backups: runs, VM backups, locks on the remotes, restores (backups app) ---------------------
# A process backing up a VM beats for its VM backup and for the run (tasks.heartbeat, every
# TASK_HEARTBEAT_SECONDS); a running run whose heartbeat is older than BACKUP_HEARTBEAT_TIMEOUT
# belonged to processes that died, and the next run of its job marks it interrupted.
BACKUP_HEARTBEAT_TIMEOUT = envint("BACKUP_HEARTBEAT_TIMEOUT", 60, minimum=2)
if BACKUP_HEARTBEAT_TIMEOUT < 2 * TASK_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"BACKUP_HEARTBEAT_TIMEOUT={BACKUP_HEARTBEAT_TIMEOUT} must be at least twice "
        f"TASK_HEARTBEAT_SECONDS={TASK_HEARTBEAT_SECONDS}, or live backups would look dead"
    )
# The lock of a VM folder on a remote: its lease, renewed every BACKUP_LOCK_HEARTBEAT_SECONDS;
# a lock whose lease ran out (its holder stopped beating) is broken by the next backup.
BACKUP_LOCK_LEASE_SECONDS = envint("BACKUP_LOCK_LEASE_SECONDS", 60, minimum=2)
BACKUP_LOCK_HEARTBEAT_SECONDS = envint("BACKUP_LOCK_HEARTBEAT_SECONDS", 10, minimum=1)
if BACKUP_LOCK_LEASE_SECONDS < 2 * BACKUP_LOCK_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"BACKUP_LOCK_LEASE_SECONDS={BACKUP_LOCK_LEASE_SECONDS} must be at least twice "
        f"BACKUP_LOCK_HEARTBEAT_SECONDS={BACKUP_LOCK_HEARTBEAT_SECONDS}, or a live lock could "
        "be broken"
    )
# A VM folder's lock must be free again (its lease over) by the time a VM whose worker stopped
# beating is backed up again, or the next try would find the dead worker's lock still held.
if BACKUP_LOCK_LEASE_SECONDS > BACKUP_HEARTBEAT_TIMEOUT:
    raise ImproperlyConfigured(
        f"BACKUP_LOCK_LEASE_SECONDS={BACKUP_LOCK_LEASE_SECONDS} must not be longer than "
        f"BACKUP_HEARTBEAT_TIMEOUT={BACKUP_HEARTBEAT_TIMEOUT}: a VM whose worker died is backed "
        "up again after the heartbeat timeout, and would find the dead worker's lock still held"
    )
# The name of this machine in the run rows (VmBackup.worker is "<host name>:<pid>"): give each
# worker host its own. A VM backup held by a process of this host is proven dead at once when
# that process is gone; one of another host, when its heartbeat is older than the timeout.
HOST_NAME = envstr("XOWEB_HOST_NAME") or socket.gethostname()
# At most this many VMs of one pool are exported at the same time, whatever the jobs (each VM
# backup exports its disks one after the other); 0 = no limit beside the jobs' concurrency.
BACKUP_MAX_EXPORTS_PER_POOL = envint("BACKUP_MAX_EXPORTS_PER_POOL", 4, minimum=0)
# How many more times a VM is backed up in the same run when its worker died under it (killed,
# out of memory, host lost); a VM that failed is not tried again.
BACKUP_INTERRUPTED_RETRIES = envint("BACKUP_INTERRUPTED_RETRIES", 1, minimum=0)
# Merges of the deltas retention frees (docs/maintenance.md §4): at most BACKUP_MERGES_PER_RUN
# of them in the clean pass that ends each VM backup (per remote), so that merges do not hold
# the backup window; the rest go to a merge task on the backups queue, which does at most
# BACKUP_MERGES_PER_TASK (0: all of them). A merge copies BACKUP_MERGE_BATCH_MIB between two
# flushes of its parent and two saves of its state file (what a resume may copy again).
BACKUP_MERGES_PER_RUN = envint("BACKUP_MERGES_PER_RUN", 2, minimum=0)
BACKUP_MERGES_PER_TASK = envint("BACKUP_MERGES_PER_TASK", 0, minimum=0)
BACKUP_MERGE_BATCH_MIB = envint("BACKUP_MERGE_BATCH_MIB", 256, minimum=1)
# A VM backup that finds its VM folder locked by a live process (a merge task, another job's
# backup of the VM) waits this long for it before failing with the holder's name (XO fails at
# once: vatesfr/xen-orchestra#7955).
BACKUP_LOCK_WAIT_SECONDS = envint("BACKUP_LOCK_WAIT_SECONDS", 300, minimum=0)
# The snapshot janitor of the pools (hourly) removes our snapshots a run left unexported only
# once they are this old: a backup starting meanwhile has a snapshot minutes old.
BACKUP_SNAPSHOT_JANITOR_AGE_SECONDS = envint("BACKUP_SNAPSHOT_JANITOR_AGE_SECONDS", 3600, minimum=0)
# The write test of a remote's form waits at most this long (a hung NFS mount must not hang
# the page); the folder is then reported as not answering.
REMOTE_CHECK_TIMEOUT = envint("REMOTE_CHECK_TIMEOUT", 10, minimum=1)
# Disks restored "to a file" from the pages land in this folder of the worker host (scripts
# using `backup_restore --to-file` choose any path).
BACKUP_RESTORE_DIR = Path(envstr("BACKUP_RESTORE_DIR", str(VAR_DIR / "restores")))

# --- Storage outlook: when will each remote be full? (backups/outlook.py) ------------------------
# A remote's space is read at each check; at most one reading per OUTLOOK_SAMPLE_SECONDS is
# kept, readings older than OUTLOOK_HISTORY_DAYS are deleted, the growth is fitted over the last
# OUTLOOK_WINDOW_DAYS (once the readings span OUTLOOK_MIN_SPAN_SECONDS), and the dashboard warns
# when a remote will be full within XOWEB_OUTLOOK_WARN_DAYS at that rate.
OUTLOOK_SAMPLE_SECONDS = envint("OUTLOOK_SAMPLE_SECONDS", 300, minimum=0)
OUTLOOK_WINDOW_DAYS = envint("OUTLOOK_WINDOW_DAYS", 30, minimum=1)
OUTLOOK_HISTORY_DAYS = envint("OUTLOOK_HISTORY_DAYS", 400, minimum=1)
OUTLOOK_WARN_DAYS = envint("XOWEB_OUTLOOK_WARN_DAYS", 30, minimum=0)
# No forecast from readings spanning less than this (seconds): a few minutes say little.
OUTLOOK_MIN_SPAN_SECONDS = envint("OUTLOOK_MIN_SPAN_SECONDS", 600, minimum=1)
if OUTLOOK_HISTORY_DAYS < OUTLOOK_WINDOW_DAYS:
    raise ImproperlyConfigured(
        f"OUTLOOK_HISTORY_DAYS={OUTLOOK_HISTORY_DAYS} must be at least "
        f"OUTLOOK_WINDOW_DAYS={OUTLOOK_WINDOW_DAYS}: the forecast reads that much history"
    )
# The demo of `make run` (the Procfile's demo process): whether it backs the demo pool up by
# itself (a remote under var/ and a job, created once), and how often its VMs write into their
# disks.
DEMO_BACKUPS = envbool("XOWEB_DEMO_BACKUPS", default=True)
DEMO_WRITE_SECONDS = envint("XOWEB_DEMO_WRITE_SECONDS", 20, minimum=1)
# Demos and tests only: beat's clock runs this many times faster than the wall clock
# (xoweb/beat_clock.py), so that a demo's ten minutes of schedules pass in seconds. 1 = real time.
BEAT_CLOCK_SPEED = envint("XOWEB_BEAT_CLOCK_SPEED", 1, minimum=1)
# --- Reports by e-mail (a job's report_when) ------------------------------------------------------
# Django's SMTP settings; the password is never shown or logged. XOWEB_SITE_URL is the address
# people open xoweb at, for the links in the reports.
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: choose one (STARTTLS on port 587, or TLS "
        "from the start on port 465)"
    )
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "xoweb@localhost")
SITE_URL = envstr("XOWEB_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
