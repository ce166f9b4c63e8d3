"""Start and drive the fake Spotify server (server.py) from Python tests.

    from client import FakeSpotify
    fake = FakeSpotify.start("client-id", "client-secret",
                             ["https://127.0.0.1:8443/callback"])
    try:
        ... point baa at fake.url ...
        fake.configure(expires_in=2, rotate_refresh_tokens=True)
        fake.set_fault("token", status=503, times=1)
        assert fake.requests("token")[0]["form"]["code_verifier"] == verifier
    finally:
        fake.stop()

Helpers for Spotify as it is in 2026 (server.py's docstring has the rules):
    fake.set_user("alice")                      # account default_account_id("alice")
    fake.rename_user(default_account_id("alice"), "alice-2")  # same account, new id
    fake.configure(omit_account_id=True)        # /v1/me as before May 2026
    fake.set_development_mode(allowed_users=["alice"])  # others: 403 at /v1/me
    fake.fail_refreshes(2)                      # the next 2 refreshes: invalid_grant
    fake.age_grants(180 * 86400)                # refresh tokens past six months
    fake.set_quota_exceeded("me", retry_after=5)        # 429 reason QUOTA_EXCEEDED
    fake.set_rate_limit(10, window=30, reason=QUOTA_EXCEEDED)  # app-wide limit
    fake.grant_fewer("streaming")               # the consent drops that scope
Over HTTPS, as baa reaches Spotify in production (certs.py makes the files):

    certs = ServerCertificates(tmpdir)
    fake = FakeSpotify.start(..., tls_cert=certs.cert_file, tls_key=certs.key_file,
                             ca_file=certs.ca_file)
    fake.url                     # https://127.0.0.1:PORT; give baa SPOTIFY_CA_FILE
    fake.stats()["api_connections"]   # connections baa opened to it

Python 3 standard library only. Every wait is bounded. Servers still
running at interpreter exit are stopped (atexit), so a failing test does not
leave a process behind.
"""

import atexit
import base64
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

QUOTA_EXCEEDED = "QUOTA_EXCEEDED"  # the 429 reason when the app's quota is used up

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")

_RUNNING = set()
_RUNNING_LOCK = threading.Lock()


class FakeSpotifyError(Exception):
    """The fake could not be started, or a control call failed."""


def pkce_pair(length=64):
    """A fresh (code_verifier, code_challenge) pair, S256, as baa makes them."""
    verifier = secrets.token_urlsafe(96)[:length]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def default_account_id(user_id):
    """The account_id the fake gives a user configured without one (as server.py)."""
    return "acct-" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


def basic_auth(client_id, client_secret):
    """The Authorization header value Spotify expects from a confidential client."""
    raw = ("%s:%s" % (client_id, client_secret)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Response:
    """A raw HTTP answer (redirects are not followed)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


class FakeSpotify:
    """A running server.py subprocess plus wrappers for its control API."""

    def __init__(self, proc, port, workdir, host, client_id, client_secret, redirect_uris,
                 ca_file=None):
        """ca_file: the fake serves HTTPS, and its certificate is checked against
        this CA (and its name against host) by every request made here."""
        self.proc = proc
        self.port = port
        self.host = host
        self.scheme = "https" if ca_file else "http"
        self.ca_file = ca_file
        self._tls = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.url = "%s://%s:%d" % (self.scheme, host if ":" not in host else "[%s]" % host, port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self._workdir = workdir
        self._log_path = os.path.join(workdir, "server.log")
        self._final_log = None

    # -- lifecycle

    @classmethod
    def start(cls, client_id="fake-client-id", client_secret="fake-client-secret",
              redirect_uris=("http://127.0.0.1:8080/callback",), user_id="demo-user",
              display_name="Demo User", host="127.0.0.1", timeout=10.0,
              python=None, extra_args=(), tls_cert=None, tls_key=None, ca_file=None):
        """Launch server.py on a free port and wait until it answers /_fake/health.

        tls_cert, tls_key: serve HTTPS with them; ca_file (required then):
        the CA this client trusts for the fake's certificate."""
        if isinstance(redirect_uris, str):
            redirect_uris = [redirect_uris]
        if bool(tls_cert) != bool(tls_key) or bool(tls_cert) != bool(ca_file):
            raise ValueError("tls_cert, tls_key and ca_file go together")
        workdir = tempfile.mkdtemp(prefix="fake-spotify-")
        port_file = os.path.join(workdir, "port")
        argv = [python or sys.executable or "/usr/bin/python3", SERVER,
                "--host", host, "--port", "0", "--port-file", port_file,
                "--client-id", client_id, "--client-secret", client_secret,
                "--user-id", user_id, "--display-name", display_name]
        for uri in redirect_uris:
            argv += ["--redirect-uri", uri]
        if tls_cert:
            argv += ["--tls-cert", tls_cert, "--tls-key", tls_key]
        argv += list(extra_args)
        log = open(os.path.join(workdir, "server.log"), "wb")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)
        finally:
            log.close()
        fake = cls(proc, 0, workdir, host, client_id, client_secret, redirect_uris, ca_file)
        with _RUNNING_LOCK:
            _RUNNING.add(fake)
        try:
            fake.port = fake._wait_for_port(port_file, timeout)
            fake.url = "%s://%s:%d" % (fake.scheme, host if ":" not in host else "[%s]" % host,
                                       fake.port)
            fake._wait_for_health(timeout)
        except BaseException:
            fake.stop()
            raise
        return fake

    def _wait_for_port(self, port_file, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FakeSpotifyError("server.py exited with status %s:\n%s"
                                       % (self.proc.returncode, self.log_text()))
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise FakeSpotifyError("server.py wrote no port within %.1fs:\n%s"
                               % (timeout, self.log_text()))

    def _wait_for_health(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/_fake/health", timeout=1.0).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                raise FakeSpotifyError("server.py did not answer within %.1fs:\n%s"
                                       % (timeout, self.log_text()))
            time.sleep(0.02)

    def stop(self, timeout=5.0):
        """SIGTERM, wait (bounded), SIGKILL if needed. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self._final_log is None:
            self._final_log = self.log_text()
            shutil.rmtree(self._workdir, ignore_errors=True)
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        """What server.py wrote to stderr (one line per request, no secrets)."""
        if self._final_log is not None:
            return self._final_log
        try:
            with open(self._log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- raw HTTP

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a fresh connection; returns a Response (no redirects followed)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if self._tls:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def _control(self, method, path, payload=None):
        body = None if payload is None else json.dumps(payload)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        resp = self.request(method, path, body=body, headers=headers)
        if resp.status != 200:
            raise FakeSpotifyError("%s %s -> %d %s" % (method, path, resp.status, resp.text))
        return resp.json()

    # -- control API

    def health(self):
        return self._control("GET", "/_fake/health")

    def config(self):
        return self._control("GET", "/_fake/config")

    def configure(self, **settings):
        """Merge settings (deny, expires_in, faults={...}, user={...}, ...)."""
        return self._control("POST", "/_fake/config", settings)

    def set_fault(self, endpoint, **fault):
        """One endpoint's fault, e.g. set_fault("token", status=503, times=1)."""
        return self.configure(faults={endpoint: fault or None})

    def set_quota_exceeded(self, endpoint, retry_after=None, times=None):
        """The endpoint answers 429 with the July 2026 quota body
        {"error":{"status":429,"message":"Too many requests","reason":"QUOTA_EXCEEDED"}}."""
        fault = {"reason": QUOTA_EXCEEDED, "retry_after": retry_after, "times": times}
        return self.set_fault(endpoint, **{k: v for k, v in fault.items() if v is not None})

    def set_rate_limit(self, calls, window=30, retry_after=None, reason=None):
        """App-wide rolling window: more than `calls` calls to /api/token and
        /v1/* within `window` seconds answer 429 with Retry-After (retry_after,
        or when the oldest call leaves the window); reason=QUOTA_EXCEEDED
        gives the quota body. The window starts empty."""
        return self.configure(rate_limit={"calls": calls, "window": window,
                                          "retry_after": retry_after, "reason": reason})

    def clear_rate_limit(self):
        return self.configure(rate_limit=None)

    def clear_faults(self):
        return self.configure(faults={"authorize": None, "token": None, "me": None})

    def set_user(self, user_id, display_name=None, account_id=None, **profile):
        """Who the next /authorize approves (email, country, product optional).

        Without account_id the account is default_account_id(user_id): a new
        id alone is another Spotify account. With the account_id of an
        existing account and a new id, that account is renamed (see
        rename_user) and logs in next. An existing account keeps the fields
        not given.
        """
        user = {"id": user_id}
        if display_name is not None:
            user["display_name"] = display_name
        if account_id is not None:
            user["account_id"] = account_id
        user.update(profile)
        return self.configure(user=user)

    def rename_user(self, account_id, new_id, **profile):
        """Spotify changes an account's id; its account_id stays.

        Tokens issued to the account before now see new_id at /v1/me. Who
        the next /authorize approves does not change (use set_user(new_id,
        account_id=...) to log in as the renamed account). Returns the
        account's record.
        """
        user = dict(profile, id=new_id, account_id=account_id)
        return self._control("POST", "/_fake/accounts", user)

    def accounts(self):
        """Every account the fake knows: [{"account_id", "id", "display_name", ...}]."""
        return self._control("GET", "/_fake/accounts")

    def set_development_mode(self, enabled=True, allowed_users=None):
        """Spotify's development mode: /v1/me hides country, email,
        explicit_content, followers and product, and answers 403 to a user
        not in allowed_users (ids or account_ids; None = everyone)."""
        return self.configure(development_mode=enabled, allowed_users=allowed_users)

    def grant_fewer(self, *scopes):
        """The next consents grant what /authorize asks for but these scopes
        (none given: everything asked, the default)."""
        return self.configure(drop_scopes=list(scopes))

    def fail_refreshes(self, times=True):
        """The next `times` refreshes (True: all, False: none) answer
        invalid_grant; the refresh tokens themselves stay valid."""
        return self.configure(invalid_grant_on_refresh=times)

    def age_grants(self, seconds):
        """As if every grant (login) had been authorized `seconds` earlier:
        past refresh_token_lifetime (default 180 days) its refresh tokens
        answer invalid_grant "Refresh token expired". Returns {"ok", "aged"}."""
        return self._control("POST", "/_fake/age_grants", {"seconds": seconds})

    def reset(self):
        return self._control("POST", "/_fake/reset")

    def revoke_refresh_tokens(self):
        return self._control("POST", "/_fake/revoke_refresh_tokens")

    def expire_access_tokens(self):
        return self._control("POST", "/_fake/expire_access_tokens")

    def requests(self, endpoint=None):
        path = "/_fake/requests"
        if endpoint is not None:
            path += "?" + urllib.parse.urlencode({"endpoint": endpoint})
        return self._control("GET", path)

    def stats(self):
        return self._control("GET", "/_fake/stats")

    def tokens(self):
        return self._control("GET", "/_fake/tokens")

    # -- transport: connections, TLS handshakes, keep-alive

    def connections(self):
        """Counts, settings and the most recent connections (server.py: Transport)."""
        return self._control("GET", "/_fake/connections")

    def set_connections(self, **settings):
        """keep_alive=False: Connection: close on every /api/token and /v1/me
        answer; resumption=False: full TLS handshakes only."""
        return self._control("POST", "/_fake/connections", settings)

    def drop_connections(self):
        """Close every open connection (but the one asking); -> how many."""
        return self._control("POST", "/_fake/drop_connections")["dropped"]

    # -- driving the OAuth flow directly (what a browser and baa would do)

    def authorize(self, challenge, redirect_uri=None, state=None, scope=None,
                  client_id=None, **extra):
        """GET /authorize with the usual parameters; returns the raw Response."""
        params = {"client_id": client_id or self.client_id, "response_type": "code",
                  "redirect_uri": redirect_uri or self.redirect_uris[0],
                  "code_challenge_method": "S256", "code_challenge": challenge}
        if scope is not None:
            params["scope"] = scope
        if state is not None:
            params["state"] = state
        params.update(extra)
        params = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", "/authorize?" + urllib.parse.urlencode(params))

    def token(self, form, auth=True, headers=None):
        """POST /api/token with a form; auth=True sends HTTP Basic client credentials."""
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth:
            hdrs["Authorization"] = basic_auth(self.client_id, self.client_secret)
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        return self.request("POST", "/api/token", body=urllib.parse.urlencode(form),
                            headers=hdrs)

    def login(self, scope="user-read-email user-read-private", state="st"):
        """Authorize + exchange the code: returns the token response JSON."""
        verifier, challenge = pkce_pair()
        resp = self.authorize(challenge, scope=scope, state=state)
        if resp.status != 302:
            raise FakeSpotifyError("authorize -> %d %s" % (resp.status, resp.text))
        code = code_from_location(resp.headers["Location"])
        resp = self.token({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": self.redirect_uris[0], "code_verifier": verifier})
        if resp.status != 200:
            raise FakeSpotifyError("token -> %d %s" % (resp.status, resp.text))
        return resp.json()

    def me(self, access_token):
        return self.request("GET", "/v1/me", headers={"Authorization": "Bearer " + access_token})


def location_params(location):
    """The query parameters of a redirect Location, as a dict."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query,
                                       keep_blank_values=True))


def code_from_location(location):
    return location_params(location)["code"]


@atexit.register
def _stop_all():
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for fake in running:
        try:
            fake.stop(timeout=2.0)
        except Exception:
            pass
