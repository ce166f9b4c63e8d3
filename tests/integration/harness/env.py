"""The environment baa runs with: a clean os.environ, the database's and
Spotify's variables, sanitizer options."""

import os

from .base import free_port
from .fake import SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, TEST_REDIRECT_URI, \
    fake_spotify_certificates
from .postgres import cluster

_SCRUB_PREFIXES = ("POSTGRES_", "BAA_", "PG", "SPOTIFY_")
# libcurl's proxy variables: a proxy of the machine running the tests must
# not carry baa's calls to the loopback stand-in (tests that want one set it).
_SCRUB_PROXY = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def sanitizer_env(env):
    log_dir = os.environ.get("SANITIZER_LOG_DIR")
    if not log_dir:
        return env
    os.makedirs(log_dir, exist_ok=True)
    asan = "log_path=%s:detect_leaks=1:abort_on_error=0" % os.path.join(log_dir, "asan")
    ubsan = "log_path=%s:print_stacktrace=1:halt_on_error=1" % os.path.join(log_dir, "ubsan")
    if os.environ.get("ASAN_OPTIONS"):
        asan += ":" + os.environ["ASAN_OPTIONS"]
    if os.environ.get("UBSAN_OPTIONS"):
        ubsan += ":" + os.environ["UBSAN_OPTIONS"]
    env["ASAN_OPTIONS"] = asan
    env["UBSAN_OPTIONS"] = ubsan
    return env


def clean_env():
    """os.environ without anything that could configure baa or libpq."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith(_SCRUB_PREFIXES) or k == "BAA_BIN")
           and k.lower() not in _SCRUB_PROXY}
    env.pop("BAA_BIN", None)
    return sanitizer_env(env)


def db_env(db, url=None, pg=None):
    """The four POSTGRES_* variables for database `db` (TCP by default)."""
    pg = pg or cluster()
    return {
        "POSTGRES_URL": url if url is not None else "127.0.0.1:%d" % pg.port,
        "POSTGRES_USER": pg.superuser,
        "POSTGRES_PW": pg.password,
        "POSTGRES_DB": db,
    }


def socket_url_env(pg=None):
    """Extra env for POSTGRES_URL=<socket dir>. PGPORT covers a non-5432 port."""
    pg = pg or cluster()
    env = {"POSTGRES_URL": pg.sockdir}
    if pg.port != 5432:
        env["PGPORT"] = str(pg.port)
    return env


# baa's own secret: the cookies and tokens tests make and open use it too.
SECRET_KEY = "baa-test-secret-key-0123456789abcdef-xyz"


def spotify_env(redirect_uri="http://127.0.0.1:9/callback", fake_url=None, ca_file=None):
    """The Spotify variables; with a fake's URL, baa calls it, and trusts
    ca_file (default: the run's test CA) when the URL is https."""
    env = {
        "SPOTIFY_CLIENT_ID": SPOTIFY_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": SPOTIFY_CLIENT_SECRET,
        "SPOTIFY_REDIRECT_URI": redirect_uri,
        "BAA_SECRET_KEY": SECRET_KEY,
    }
    if fake_url:
        env["SPOTIFY_ACCOUNTS_URL"] = fake_url
        env["SPOTIFY_API_URL"] = fake_url
    if fake_url and fake_url.startswith("https://"):
        env["SPOTIFY_CA_FILE"] = ca_file or fake_spotify_certificates().ca_file
    return env


def base_env(db, listen=None, workers=2, **extra):
    env = clean_env()
    env.update(db_env(db))
    env.update(spotify_env())
    env["BAA_LISTEN"] = listen or "127.0.0.1:%d" % free_port()
    env["BAA_WORKERS"] = str(workers)
    return with_extra(env, extra)


def with_extra(env, extra):
    """env with extra's variables set (as text), and those given as None removed."""
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def login_env(db, fake_url, workers=2, redirect_uri=TEST_REDIRECT_URI, **extra):
    """base_env + the Spotify variables pointing at a fake; extra as in base_env."""
    env = base_env(db, workers=workers)
    env.update(spotify_env(redirect_uri, fake_url))
    return with_extra(env, extra)
