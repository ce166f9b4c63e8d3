"""A tiny browser: a cookie jar, Set-Cookie applied as browsers do, the
login through the fake step by step, and devices with their own headers."""

import json
import re
import time
import urllib.parse

from .cookies import OAUTH_COOKIE, SESSION_COOKIE
from .web import http_request


class SetCookie:
    """One Set-Cookie header: name, value, attributes (lower-case names)."""

    def __init__(self, raw):
        self.raw = raw
        parts = [p.strip() for p in raw.split(";")]
        self.name, _, self.value = parts[0].partition("=")
        self.attrs = {}
        for p in parts[1:]:
            if not p:
                continue
            k, eq, v = p.partition("=")
            self.attrs[k.strip().lower()] = v.strip() if eq else True

    @property
    def max_age(self):
        v = self.attrs.get("max-age")
        return int(v) if isinstance(v, str) and re.fullmatch(r"-?\d+", v) else None

    @property
    def clears(self):
        return self.value == "" or (self.max_age is not None and self.max_age <= 0)

    def __repr__(self):
        return "SetCookie(%r)" % self.raw


class BrowserResponse:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.set_cookies = {}
        self.set_cookie_list = [SetCookie(h) for h in (headers.get_all("Set-Cookie") or [])]
        for c in self.set_cookie_list:
            self.set_cookies[c.name] = c

    @property
    def location(self):
        return self.headers.get("Location")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %s set-cookie=%r body=%r>" % (self.status, dict(self.headers.items()),
                                                   [c.raw for c in self.set_cookie_list],
                                                   self.body[:300])


class Browser:
    """A browser with its own cookie jar, talking to nginx on loopback.

    Follows no redirects. Set-Cookie is applied as a browser would (an empty
    value or Max-Age <= 0 deletes), so tests that replay an old cookie must
    pass it explicitly (cookies=... or headers={"Cookie": ...}).
    """

    # How a request travels; a subclass may swap it (HTTPS).
    transport = staticmethod(http_request)

    def __init__(self, port):
        self.port = port
        self.jar = {}

    def cookie_header(self, cookies=None):
        jar = self.jar if cookies is None else cookies
        return "; ".join("%s=%s" % kv for kv in jar.items())

    def request(self, method, path, headers=None, cookies=None, timeout=15):
        """cookies: None = the jar; a dict = exactly these; headers["Cookie"] wins."""
        hdrs = dict(headers or {})
        if "Cookie" not in hdrs:
            value = self.cookie_header(cookies)
            if value:
                hdrs["Cookie"] = value
        t0 = time.monotonic()
        status, rh, body = self.transport(self.port, method, path, headers=hdrs, timeout=timeout)
        resp = BrowserResponse(status, rh, body, time.monotonic() - t0)
        for c in resp.set_cookie_list:
            if c.clears:
                self.jar.pop(c.name, None)
            else:
                self.jar[c.name] = c.value
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- the login, step by step -----------------------------------------
    def start_login(self, next_path=None, query=None):
        """GET /login[?next=...] (query: a raw query string instead)."""
        if query is None and next_path is not None:
            query = urllib.parse.urlencode({"next": next_path})
        return self.get("/login" + ("?" + query if query else ""))

    @staticmethod
    def authorize_at(fake, location):
        """The browser at Spotify: GET the authorize URL on the fake, no redirects.

        Returns (response, params of the redirect Location back to baa)."""
        parts = urllib.parse.urlsplit(location)
        resp = fake.request("GET", parts.path + "?" + parts.query)
        params = {}
        if resp.headers.get("Location"):
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
                resp.headers["Location"]).query, keep_blank_values=True))
        return resp, params

    def callback(self, params, **kw):
        """GET /callback with params (a dict or a raw query string)."""
        query = params if isinstance(params, str) else urllib.parse.urlencode(params)
        return self.get("/callback?" + query, **kw)

    def login(self, fake, next_path=None):
        """The whole login; returns a LoginResult (assert on it in the test)."""
        r = LoginResult()
        r.login = self.start_login(next_path)
        r.oauth_cookie = self.jar.get(OAUTH_COOKIE)
        if r.login.status != 302 or not r.login.location:
            return r
        r.authorize_url = r.login.location
        r.authorize_params = dict(urllib.parse.parse_qsl(
            urllib.parse.urlsplit(r.authorize_url).query, keep_blank_values=True))
        r.authorize, r.redirect_params = self.authorize_at(fake, r.authorize_url)
        if r.authorize.status != 302:
            return r
        r.code = r.redirect_params.get("code")
        r.state = r.redirect_params.get("state")
        r.callback = self.callback(r.redirect_params)
        r.session_cookie = self.jar.get(SESSION_COOKIE)
        return r


class LoginResult:
    """Every step of one login (None where the flow stopped early)."""
    login = authorize = callback = None
    authorize_url = oauth_cookie = session_cookie = code = state = None
    authorize_params = redirect_params = None

    @property
    def ok(self):
        return self.callback is not None and self.callback.status == 302 and \
            self.session_cookie is not None

    def describe(self):
        return "login=%r\nauthorize=%r\ncallback=%r" % (self.login, self.authorize, self.callback)


class DeviceBrowser(Browser):
    """A Browser that is one device: it sends its User-Agent (and any other
    headers given) with every request, and reaches nginx at host (e.g. "::1"
    when that nginx listens there too), so that baa sees its label and its
    network as it would a real device's."""

    def __init__(self, port, user_agent=None, headers=None, host="127.0.0.1"):
        super().__init__(port)
        self.host = host
        self.headers = dict(headers or {})
        if user_agent is not None:
            self.headers["User-Agent"] = user_agent

    def transport(self, port, method, path, headers=None, timeout=15):
        return http_request(port, method, path, headers=headers, timeout=timeout, host=self.host)

    def request(self, method, path, headers=None, cookies=None, timeout=15):
        merged = dict(self.headers)
        merged.update(headers or {})
        return super().request(method, path, headers=merged, cookies=cookies, timeout=timeout)
