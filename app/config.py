"""Configuration: defaults in code, then ``instance/config.py``, then ``CXR_ACADEMY_*``
environment variables, then the mapping passed to ``create_app``."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from app.field_encryption import parse_keys
from app.shared_services import check_store_urls, rate_limit_storage_options
from app.urls import checked_base_url

ENV_PREFIX = "CXR_ACADEMY"
SECRET_KEY_FILE = "secret_key"  # noqa: S105  (a file name)
DEID_SECRET_FILE = "deid_secret"  # noqa: S105  (a file name)
FIELD_KEY_FILE = "field_key"
DEFAULT_SQLITE_NAME = "cxr_academy.sqlite3"


class DefaultConfig:
    """Embedded defaults: a zero-setup install on SQLite in the instance folder."""

    # Set later from the instance folder unless configured.
    SECRET_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    POSTGRES_JIT = False  # see load_config

    # Sessions: the signed cookie only names a server-side session row (see auth.sessions),
    # so logout and deactivation end it for good. A session ends after IDLE_TIMEOUT without
    # a request, and SESSION_LIFETIME after sign-in at the latest (ASVS V3.3.2: 30 minutes,
    # 12 hours) - except while its user has a timed exam open, which its deadline bounds.
    # Without "remember this device" the cookie is a browser-session cookie.
    SESSION_LIFETIME = timedelta(hours=12)
    IDLE_TIMEOUT = timedelta(minutes=30)
    # "Remember this device": a persistent cookie for this long. Trainee-only accounts then
    # keep the sign-in across idle time; any other role still ends after IDLE_TIMEOUT and
    # never outlives SESSION_LIFETIME.
    REMEMBER_DEVICE_LIFETIME = timedelta(days=7)
    # A worker remembers that a user may fetch an image for this many seconds (an exam page
    # fetches each image in stages within a second or two): an attempt's end or a lost role
    # reaches image requests that much later, sign-out at once (app/cases/image_grants.py).
    IMAGE_GRANT_SECONDS = 5.0
    PERMANENT_SESSION_LIFETIME = timedelta(days=7)
    SESSION_COOKIE_NAME = "cxr_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # True forces Secure cookies; otherwise they are Secure whenever the request is HTTPS.
    SESSION_COOKIE_SECURE = False
    FORCE_HTTPS = False
    # Number of reverse proxies in front of the app whose X-Forwarded-* headers are trusted.
    TRUSTED_PROXY_COUNT = 0

    # The CSRF token is bound to the session and lives as long as it does, so a long exam
    # never loses a save because its token aged out.
    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_SSL_STRICT = True

    # Sign-in throttling. Per account (whether the user name or the e-mail address is typed),
    # in the database: after 10 failures within 15 minutes a password alone no longer signs
    # in until 15 minutes pass without a failure; the owner still gets in with password and
    # second factor together, or with a password reset link (app.auth.sign_in).
    LOGIN_ACCOUNT_MAX_FAILURES = 10
    LOGIN_ACCOUNT_WINDOW = timedelta(minutes=15)
    # Per client address (Flask-Limiter, RATELIMIT_STORAGE_URI): bounds guessing across
    # accounts. Clinics behind one NAT address share it; raise it for them.
    LOGIN_FAILURE_LIMIT_PER_ADDRESS = "10 per 15 minutes"
    # Passwords typed again by a signed-in user (turning two-step sign-in off, removing a
    # security key), per account across those pages.
    ACCOUNT_PASSWORD_RECHECK_LIMIT = "10 per 15 minutes"  # noqa: S105  (a rate, not a password)
    # memory:// counts in each process alone: with several app processes or servers, a
    # shared store (redis://host:6379/0) makes every limit hold across them all.
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_STORAGE_OPTIONS: dict[str, Any] = {}
    RATELIMIT_HEADERS_ENABLED = False

    INVITATION_MAX_AGE = timedelta(days=7)

    # Second factor (TOTP): required of trainers, programme leads and administrators;
    # trainees may opt in. Wrong codes per account before the sign-in must start over, and
    # how long the second step stays refused after that; how long a right password waits
    # for its second step.
    REQUIRE_2FA = True

    # Compressed responses (Flask-Compress) for what compresses: pages, scripts, styles,
    # JSON and the viewer's WebAssembly decoder (300 KB -> 95 KB). On a 2 Mbit/s clinic
    # link that is a second less before window/level works (bench_viewer_network). Images
    # are compressed already and go as they are. gzip: every browser, no extra library.
    COMPRESS_MIMETYPES = ["text/html", "text/css", "text/javascript", "application/javascript",
                          "application/json", "application/wasm"]
    COMPRESS_ALGORITHM = ["gzip"]
    COMPRESS_ALGORITHM_STREAMING = ["deflate"]
    COMPRESS_LEVEL = 6
    # Keys that encrypt authenticator keys in the database (app.field_encryption): the first
    # encrypts, all decrypt, so a new key goes first and the old one stays until
    # `cxr-academy users encrypt-2fa-keys` has re-encrypted every row. Default: one key
    # generated once into instance/field_key. Never in the database or in a backup; a
    # restore needs it, or every second factor must be reset.
    FIELD_ENCRYPTION_KEYS: list[str] | None = None
    SECOND_FACTOR_MAX_FAILURES = 5
    SECOND_FACTOR_LOCKOUT = timedelta(minutes=15)
    SECOND_FACTOR_STEP_MAX_AGE = timedelta(minutes=5)
    # How long a security key's registration or sign-in challenge may be answered.
    SECURITY_KEY_CHALLENGE_MAX_AGE = timedelta(minutes=5)
    # Self-service reset links (only when MAIL_SERVER is set); requests are limited per
    # client address and per typed user name, so nobody can flood a mailbox.
    PASSWORD_RESET_MAX_AGE = timedelta(hours=1)
    PASSWORD_RESET_LIMIT = "5 per hour"  # noqa: S105  (a rate, not a password)
    # Length over composition rules (ASVS V2.1): 12+ characters, checked against a list of
    # common passwords and the account's own name (app.auth.password_policy).
    PASSWORD_MIN_LENGTH = 12

    # argon2id parameters: OWASP's first minimum configuration (m=19 MiB, t=2, p=1).
    # Measured on the two-core server: ~20 ms CPU (~27 ms wall) per hash, against ~180 ms
    # CPU (~300 ms wall) for RFC 9106's 64 MiB, t=3, p=4 profile used before; 200 trainees
    # signing in within a minute then cost ~5 s of one core instead of ~60 s, and a burst
    # of sign-ins no longer queues behind hashing. Hashes made with other parameters still
    # verify and are re-hashed with these at the next sign-in (auth.services.note_sign_in).
    ARGON2_TIME_COST = 2
    ARGON2_MEMORY_COST = 19456  # KiB
    ARGON2_PARALLELISM = 1

    # The public address: base of every absolute link in e-mails, certificate PDFs and
    # command-line output (never the Host header of a request, which a client chooses).
    PUBLIC_BASE_URL = "http://127.0.0.1:5000"

    # Outgoing e-mail: none unless MAIL_SERVER is set (invitation links are then shown
    # to the administrator to pass on).
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    MAIL_USE_TLS = False  # STARTTLS
    MAIL_USE_SSL = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_SENDER = "CXR Academy <no-reply@cxr-academy.invalid>"
    MAIL_TIMEOUT = 10

    MAX_CONTENT_LENGTH = 16 * 1024 * 1024

    # Case library. Images live in IMAGE_STORAGE_PATH (default: instance/images).
    IMAGE_STORAGE_PATH: str | None = None
    # Keys the de-identification HMACs (replacement UIDs, date shifts, patient pseudonyms):
    # generated once into the instance folder; set it explicitly for several app servers.
    DEID_SECRET: str | None = None
    DEID_RETAIN_PATIENT_CHARACTERISTICS = True
    DEID_DATES = "shift"  # or "remove"
    CASE_UPLOAD_MAX_BYTES = 1024 * 1024 * 1024
    INGEST_FILE_MAX_BYTES = 512 * 1024 * 1024
    INGEST_TIME_LIMIT = 60  # seconds per file, parsing to derivatives
    INGEST_MEMORY_LIMIT = 4 * 1024**3  # bytes of address space for the parsing process
    INGEST_WORKERS = 0  # files parsed at once by an import; 0: one per CPU core
    ARCHIVE_MAX_ENTRIES = 2000
    ARCHIVE_MAX_TOTAL_BYTES = 4 * 1024**3
    ARCHIVE_MAX_RATIO = 100.0
    # Where `backup`/`restore` find pg_dump and pg_restore (default: PATH, then
    # /usr/lib/postgresql/<newest>/bin); pin it to the server's major version or newer.
    POSTGRES_BIN_DIR: str | None = None
    # The security log for a SIEM (docs/security-log.md): a file (default:
    # instance/security.log, created 0600, reopened after logrotate moves it) or "-" for
    # standard error, as containers want.
    SECURITY_LOG_PATH: str | None = None
    # Background jobs (app.jobs): the queue. Empty: a SQLite file in the instance folder,
    # enough for one server; redis://host:6379/0 when several servers share the work.
    # Start consumers with `cxr-academy worker` (the demo runs one in-process).
    JOB_QUEUE_URL = ""
    # Uploaded files waiting for their import job (default: instance/job-uploads); a folder
    # the workers share with the app servers. Each job's files are removed when it ends.
    JOB_SPOOL_PATH: str | None = None
    # A running job whose worker has not reported for this long lost its worker: a worker
    # starting takes it up again. Longer than one file's INGEST_TIME_LIMIT.
    JOB_STALE_AFTER = 180  # seconds
    # A PACS import retrieves one study at a time into the job's folder, whole, before any
    # of it is imported. A chest radiograph study is a handful of images (PA, lateral,
    # repeats), each at most ~35 MB uncompressed (a 43 x 43 cm detector at 0.1 mm, 16 bits):
    # 50 images and 1 GiB are far above any real one, and stop a mis-selected study (or a
    # PACS answering with far more than it listed) from filling the workers' disk.
    PACS_STUDY_MAX_BYTES = 1024**3
    PACS_STUDY_MAX_IMAGES = 50
    # A library export's zip stays downloadable from its job's page this long.
    LIBRARY_EXPORT_KEEP_DAYS = 7
    # Processes a re-scoring job shares its attempts between (PostgreSQL; SQLite has one
    # writer, so it re-scores in the worker's process).
    RESCORING_PROCESSES = 2
    # The hour (UTC) at which the workers send the day's certificate expiry reminders.
    REMINDERS_HOUR = 6
    CASES_PAGE_SIZE = 50
    AUDIT_PAGE_SIZE = 50
    CERTIFICATES_PAGE_SIZE = 50


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Apply every configuration layer in order of precedence (last wins)."""
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)

    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + str(
            Path(app.instance_path) / DEFAULT_SQLITE_NAME
        )
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") and not app.config.get(
        "POSTGRES_JIT"
    ):
        # PostgreSQL's JIT compiles any query whose estimated cost is high, which costs
        # 100-300 ms per dashboard aggregate that itself runs in 20-50 ms: a loss for
        # short interactive queries. Off per connection unless POSTGRES_JIT is set.
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        connect_args = dict(options.get("connect_args", {}))
        connect_args.setdefault("options", "-c jit=off")
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": connect_args}
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))
    if not app.config.get("DEID_SECRET"):
        app.config["DEID_SECRET"] = instance_secret_key(Path(app.instance_path), DEID_SECRET_FILE)
    if not app.config.get("FIELD_ENCRYPTION_KEYS"):
        app.config["FIELD_ENCRYPTION_KEYS"] = [
            instance_secret_key(Path(app.instance_path), FIELD_KEY_FILE)]
    # Refuse to start on a key too short to be a key, rather than at the first sign-in.
    app.config["FIELD_ENCRYPTION_KEYS"] = list(parse_keys(app.config["FIELD_ENCRYPTION_KEYS"]))
    for name in ("PACS_STUDY_MAX_BYTES", "PACS_STUDY_MAX_IMAGES"):
        # Said at start rather than by every PACS import failing.
        value = app.config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    if not app.config.get("IMAGE_STORAGE_PATH"):
        app.config["IMAGE_STORAGE_PATH"] = str(Path(app.instance_path) / "images")
    # Only remembered devices get a persistent cookie (session.permanent), for this long.
    app.config["PERMANENT_SESSION_LIFETIME"] = app.config["REMEMBER_DEVICE_LIFETIME"]
    app.config["PUBLIC_BASE_URL"] = checked_base_url(app.config["PUBLIC_BASE_URL"])
    check_store_urls(app.config)
    app.config["RATELIMIT_STORAGE_OPTIONS"] = rate_limit_storage_options(
        str(app.config["RATELIMIT_STORAGE_URI"]), dict(app.config["RATELIMIT_STORAGE_OPTIONS"]))


def normalise_database_url(url: str) -> str:
    """Let plain ``postgresql://`` URLs use psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def instance_secret_key(instance_path: Path, file_name: str = SECRET_KEY_FILE) -> str:
    """Read the install's secret key, generating it once on first run.

    The key is never in the repository: each install makes its own, readable by its owner only.
    """
    key_file = instance_path / file_name
    if key_file.exists():
        key = key_file.read_text().strip()
        if key:
            return key
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # O_EXCL: two processes starting at once must not end up with different keys.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
