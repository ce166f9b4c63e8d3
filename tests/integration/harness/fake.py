"""The fake Spotify (tests/fake_spotify): loaded as modules, started over
HTTPS with a throwaway CA made once per run."""

import importlib.util
import os
import sys

from .base import REPO
from .processes import _LOCK, make_temp_dir, register_cleanup

# The client the fake knows and baa is configured with.
SPOTIFY_CLIENT_ID = "baa-test-client-id"
SPOTIFY_CLIENT_SECRET = "baa-test-client-secret-0123456789"
FAKE_SPOTIFY_DIR = os.path.join(REPO, "tests", "fake_spotify")
# Only has to be the same at baa and at the fake: the tests play the browser
# and never follow the redirect to it.
TEST_REDIRECT_URI = "http://127.0.0.1:9/callback"
# baa asks for no scope unless SPOTIFY_SCOPES names some: id, display_name
# and account_id of /v1/me need none, and development mode grants no more.
DEFAULT_SCOPES = ""
_FAKE_MODULES = {}
_CERTIFICATES = None


def _fake_spotify_module(name):
    """tests/fake_spotify/NAME.py as a module (loaded once, under its own name)."""
    with _LOCK:
        if name not in _FAKE_MODULES:
            spec = importlib.util.spec_from_file_location(
                "baa_fake_spotify_" + name, os.path.join(FAKE_SPOTIFY_DIR, name + ".py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _FAKE_MODULES[name] = mod
        return _FAKE_MODULES[name]


def fake_spotify_client():
    """tests/fake_spotify/client.py as a module."""
    return _fake_spotify_module("client")


def fake_spotify_certs():
    """tests/fake_spotify/certs.py as a module (throwaway CAs and certificates)."""
    return _fake_spotify_module("certs")


def fake_spotify_certificates():
    """The run's throwaway CA and the stand-in's certificate for 127.0.0.1 and
    ::1 (certs.ServerCertificates: ca_file, cert_file, key_file), made once
    per run with the openssl command, in a temp dir baa (nobody) can read."""
    global _CERTIFICATES
    with _LOCK:
        if _CERTIFICATES is None or not os.path.exists(_CERTIFICATES.ca_file):
            _CERTIFICATES = fake_spotify_certs().ServerCertificates(make_temp_dir("baa-it-certs-"))
        return _CERTIFICATES


def start_fake_spotify(redirect_uri=TEST_REDIRECT_URI, tls=True, **kw):
    """A running fake Spotify that knows baa's test client id, secret and
    redirect URI; over HTTPS with fake_spotify_certificates() unless tls=False (or
    other tls_cert/tls_key/ca_file are given)."""
    client = fake_spotify_client()
    if tls and "tls_cert" not in kw:
        certs = fake_spotify_certificates()
        kw.update(tls_cert=certs.cert_file, tls_key=certs.key_file, ca_file=certs.ca_file)
    fake = client.FakeSpotify.start(SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, [redirect_uri],
                                    python=sys.executable or "/usr/bin/python3", **kw)
    register_cleanup(fake.stop)
    return fake
