"""Hostile requests through the shipped nginx site: a matrix of malformed,
oversized and malicious requests against every route.

Each case is sent as raw bytes over TLS (a fresh connection per case, the
certificate not verified: it is the self-signed one scripts/render-nginx
makes), so that the test can send what http.client refuses to: NUL and
control bytes, bare CR and LF, invalid UTF-8, broken percent-encoding,
100 KB headers, bodies whose length lies. The stack is the deployment's
(tests/integration/test_deploy.py's DeployStack: nginx/baa.conf.in rendered
by `scripts/render-nginx local`, two `baa serve` instances on unix sockets,
the second one serving the Spotify routes as in scripts/run-local) and the
fake Spotify, through which one user logs in before the matrix runs.

For every case the answer is exactly one of the table's expected outcomes:
a status, or CLOSED when nginx drops the connection without an answer.
Outcomes outside 4xx are the exceptions the table justifies: input that the
route harmlessly ignores, and two of nginx's own protocol answers that HTTP
prescribes (505 for an HTTP/2.0 request line, 501 for an unknown
Transfer-Encoding), which never reach baa. nginx's refusals of oversized
headers are 400 on the wire (494 is only its internal code for them). Who answered is checked too: baa's answers are
JSON (or /metrics' text), nginx's own refusals never are.

After the whole matrix: no baa process died or was replaced (the pids of
each master and its workers are the same), the users table is
byte-identical (every row, dumped with psql), the logged-in user's GET /me
answers 200 with the same body, every line of baa's log is well-formed
logfmt (no line forged by a CR or LF in a path), and no cookie value,
authorization code, token or header value the cases sent appears in it.

The /login rate limit (5 r/s by default) is raised for this stack only, so
that the cases reach baa instead of nginx's 429.
"""

import collections
import http.client
import secrets
import socket
import ssl
import urllib.parse

from harness import (OAUTH_COOKIE, SESSION_COOKIE, TEST_REDIRECT_URI, CookieSigner,
                     SpotifyTestCase, parse_logfmt)
from test_deploy import DeployStack

_SSL = ssl.create_default_context()
_SSL.check_hostname = False
_SSL.verify_mode = ssl.CERT_NONE

# nginx closed the connection without sending an answer.
CLOSED = "closed"

# In every cookie value, code, token, header value and body the cases send
# (never in a path, which baa logs): the log must not contain it.
MARK = "hx" + secrets.token_hex(8)
SQL_OR = "' OR 1=1 --" + MARK
SQL_DROP = "'; DROP TABLE users; --" + MARK
SQL_PATH = "' OR 1=1 --"  # paths are logged: no MARK

# Filled in when the matrix runs: the logged-in user's session cookie, and a
# login in progress (its __Host-baa_oauth cookie and state).
SESSION = b"@SESSION@"
OAUTH = b"@OAUTH@"
STATE = b"@STATE@"

Case = collections.namedtuple("Case", "name request expect by why half_close")


def q(text):
    """Percent-encoded for a query or a path."""
    return urllib.parse.quote(text, safe="").encode()


def raw(method, target, headers=(), body=b"", version=b"HTTP/1.1", host=True, length=True,
        close=True):
    """A request's bytes. headers: (name, value) pairs or whole raw lines (bytes)."""
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: 127.0.0.1")
    for h in headers:
        lines.append(h if isinstance(h, bytes) else h[0] + b": " + h[1])
    if body and length:
        lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def case(name, request, expect, by="baa", why="", half_close=False):
    """expect: a status, CLOSED, or a set of them. half_close: the client
    ends its side of the connection once the request is sent."""
    expect = frozenset(expect if isinstance(expect, (set, frozenset, tuple, list)) else (expect,))
    return Case(name, request, expect, by, why, half_close)


def cookie(value):
    return (b"Cookie", value if isinstance(value, bytes) else value.encode())


# --- the routes -------------------------------------------------------------
# What each route answers to a request carrying nothing it recognises (no
# session, no parameters), with the reason when that is not a 4xx.
ROUTES = [
    # (method, path, status without valid input, by, why when not 4xx)
    (b"GET", b"/", 200, "nginx", "the static page reads no input"),
    (b"GET", b"/healthz", 200, "baa", "liveness reads nothing but method and path"),
    (b"GET", b"/readyz", 200, "baa", "readiness reads nothing but method and path"),
    (b"GET", b"/login", 302, "baa", "/login reads only `next`; anything else is ignored, "
                                   "and starting a login stores nothing"),
    (b"GET", b"/callback", 400, "baa", ""),
    (b"POST", b"/logout", 200, "baa", "logging out without a session only clears the cookie"),
    (b"GET", b"/me", 401, "baa", ""),
    (b"DELETE", b"/me", 401, "baa", ""),
    (b"GET", b"/me/token", 401, "baa", ""),
    (b"GET", b"/me/sessions", 401, "baa", ""),
    (b"DELETE", b"/me/sessions/1", 401, "baa", ""),
    (b"GET", b"/me/activity", 401, "baa", ""),
    (b"GET", b"/metrics", 200, "baa", "the counters read no input (nginx allows loopback)"),
    (b"GET", b"/metrics/2", 200, "baa", "instance 2's counters, which read no input"),
    (b"GET", b"/favicon.ico", 204, "nginx", "nginx answers it itself, reading no input"),
]


def per_route_cases():
    """SQL-looking strings in the path, the query, every cookie, headers and a
    form body, on every route with its own method (and HEAD for GETs)."""
    cases = []
    sql_query = b"next=" + q(SQL_OR) + b"&code=" + q(SQL_DROP) + b"&state=" + q(SQL_OR) + \
        b"&error=" + q(SQL_DROP) + b"&" + q(SQL_OR) + b"=" + q(SQL_DROP)
    sql_cookies = ("%s=%s; %s=%s; %s=%s" % (SESSION_COOKIE, SQL_OR, OAUTH_COOKIE, SQL_DROP,
                                           SQL_OR.replace(" ", "").replace(";", ""), SQL_DROP)).encode()
    sql_headers = [(b"User-Agent", SQL_OR.encode()), (b"Referer", SQL_DROP.encode()),
                   (b"X-Forwarded-For", SQL_OR.encode()), (b"Authorization", b"Bearer " + SQL_DROP.encode()),
                   (b"Accept-Language", SQL_OR.encode())]
    form = (b"Content-Type", b"application/x-www-form-urlencoded")
    sql_form = b"next=" + q(SQL_OR) + b"&code=" + q(SQL_DROP) + b"&access_token=" + q(SQL_OR)
    for method, path, status, by, why in ROUTES:
        name = (method + b" " + path).decode()
        # /login reads `next`, /callback `code`, `state` and `error`: a
        # SQL-looking value is refused, never used.
        query_status = {b"/login": 400, b"/callback": 400}.get(path, status)
        # Below /me/sessions only DELETE /me/sessions/{id} is served.
        below = "a path nobody serves" if path != b"/me/sessions" else \
            "below /me/sessions, only DELETE is served"
        cases += [
            case(name + ", SQL in the path (%s)" % below,
                 raw(method, path.rstrip(b"/") + b"/" + q(SQL_PATH)),
                 405 if path == b"/me/sessions" else 404),
            case(name + ", SQL in every parameter of the query",
                 raw(method, path + b"?" + sql_query), query_status, by,
                 "" if query_status >= 400 else why + "; the query is not read here"),
            case(name + ", SQL in every cookie (session, login, another)",
                 raw(method, path, [cookie(sql_cookies)]), status, by, why),
            case(name + ", SQL in headers (User-Agent, Referer, X-Forwarded-For, "
                        "Authorization, Accept-Language)",
                 raw(method, path, sql_headers), status, by, why),
            case(name + ", SQL in a form body",
                 raw(method, path, [form], body=sql_form), status, by,
                 why + "; no route reads a body" if why else ""),
        ]
        if method == b"GET":
            cases.append(case(name + " as HEAD, SQL in query and cookies",
                              raw(b"HEAD", path + b"?" + sql_query, [cookie(sql_cookies)]),
                              query_status, by, why if query_status < 400 else ""))
    return cases


def me(**kw):
    """GET /me with the logged-in user's session cookie."""
    return raw(b"GET", b"/me", [cookie(b"%s=%s" % (SESSION_COOKIE.encode(), SESSION))], **kw)


LOGGED_IN = "the route ignores it and answers the logged-in user"
IGNORED = "nginx drops a header line it cannot read as a header (ignore_invalid_headers)"

MATRIX = per_route_cases() + [
    # --- the request line -------------------------------------------------------
    case("NUL in the path", b"GET /me\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "nginx"),
    case("NUL in the method", b"GE\x00T /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "nginx"),
    case("control byte (0x01) in the path", raw(b"GET", b"/me\x01x"), 400, "nginx"),
    case("DEL (0x7f) in the path", raw(b"GET", b"/me\x7fx"), 400, "nginx"),
    case("bare CR in the request line", b"GET /me\rX HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "nginx"),
    case("space in the path", raw(b"GET", b"/me /x"), 400, "nginx"),
    case("invalid UTF-8 in the path", raw(b"GET", b"/me/\xff\xfe\xc0\xaf"), 404),
    case("bare LF line ends", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n", 200,
         why="nginx reads bare LF line ends as HTTP allows; the request itself is fine"),
    case("lowercase method", raw(b"get", b"/healthz"), 400, "nginx"),
    case("unknown method on a route", raw(b"FROB", b"/me"), 405),
    case("unknown method elsewhere", raw(b"FROB", b"/nowhere"), 404),
    case("method longer than any baa knows", raw(b"A" * 40, b"/healthz"), 400),
    case("TRACE", raw(b"TRACE", b"/me"), 405, "nginx"),
    case("CONNECT", raw(b"CONNECT", b"127.0.0.1:443"), 400, "nginx"),
    case("PROPFIND on a route", raw(b"PROPFIND", b"/me"), 405),
    case("OPTIONS on a route", raw(b"OPTIONS", b"/me/token"), 405),
    case("PUT on a route", raw(b"PUT", b"/me", body=b"x=1"), 405),
    case("PATCH on a route", raw(b"PATCH", b"/me/token", body=b"x=1"), 405),
    case("POST to a GET route", raw(b"POST", b"/healthz", body=b"x=1"), 405),
    case("GET of the POST route", raw(b"GET", b"/logout"), 405),
    case("POST to the static page", raw(b"POST", b"/", body=b"x=1"), 405, "nginx"),
    case("DELETE of /login", raw(b"DELETE", b"/login"), 405),
    case("asterisk target", raw(b"OPTIONS", b"*"), 400, "nginx"),
    case("absolute-form target with another host", raw(b"GET", b"https://evil.example/me"), 401),
    case("junk HTTP version", raw(b"GET", b"/healthz", version=b"HTTP/1.1x"), 400, "nginx"),
    case("HTTP/2.0 in an HTTP/1 request line", raw(b"GET", b"/healthz", version=b"HTTP/2.0"), 505, "nginx",
         why="nginx's own answer to a major version it does not speak (RFC 9110 15.6.6); baa never sees it"),
    case("HTTP/1.0 without Host", raw(b"GET", b"/healthz", version=b"HTTP/1.0", host=False), 200,
         why="HTTP/1.0 has no Host header; /healthz reads nothing"),
    case("no Host (HTTP/1.1)", raw(b"GET", b"/healthz", host=False), 400, "nginx"),
    case("two Host headers", raw(b"GET", b"/healthz", [(b"Host", b"127.0.0.1")]), 400, "nginx"),
    case("SQL as the Host", raw(b"GET", b"/healthz", host=False,
                                headers=[(b"Host", SQL_OR.encode())]), 400, "nginx"),
    case("path of 10 KB", raw(b"GET", b"/me/" + b"a" * 10240), 414, "nginx"),
    case("path of 4 KB (past baa's bound, within nginx's)", raw(b"GET", b"/me/" + b"a" * 4096), 414),

    # --- percent-encoding in the path (nginx decodes it) --------------------------
    case("%zz in the path", raw(b"GET", b"/me%zz"), 400, "nginx"),
    case("%0 at the end of the path", raw(b"GET", b"/me%0"), 400, "nginx"),
    case("%00 in the path", raw(b"GET", b"/me%00"), 400, "nginx"),
    case("encoded CR LF in the path", raw(b"GET", b"/me%0d%0aX-Injected:%20yes"), 404),
    case("overlong UTF-8 slash in the path", raw(b"GET", b"/%c0%afme"), 404),
    case("encoded dots above the root", raw(b"GET", b"/%2e%2e/%2e%2e/etc/passwd"), 400, "nginx"),
    case("dot segments", raw(b"GET", b"/me/../healthz"), 200,
         why="nginx resolves dot segments: this is /healthz, which reads nothing"),
    case("encoded slash (nginx decodes it: /me/token)", raw(b"GET", b"/me%2ftoken"), 401),

    # --- the query: percent-encoding, duplicates, bounds --------------------------
    case("/login next=%zz", raw(b"GET", b"/login?next=%zz"), 400),
    case("/login next=%0", raw(b"GET", b"/login?next=%0"), 400),
    case("/login next=%00", raw(b"GET", b"/login?next=/%00"), 400),
    case("/login next with overlong UTF-8", raw(b"GET", b"/login?next=/%c0%af"), 400),
    case("/login next with raw invalid UTF-8", raw(b"GET", b"/login?next=/\xff\xfe"), 400),
    case("/login next with encoded CR LF", raw(b"GET", b"/login?next=/%0d%0aSet-Cookie:%20x"), 400),
    case("/login next to another origin", raw(b"GET", b"/login?next=//evil.example"), 400),
    case("/login next=/\\evil", raw(b"GET", b"/login?next=/%5cevil.example"), 400),
    case("/login two next", raw(b"GET", b"/login?next=/a&next=/b"), 400),
    case("/login next of 7 KB", raw(b"GET", b"/login?next=/" + b"a" * 7000), 400),
    case("/login 40 parameters", raw(b"GET", b"/login?" + b"&".join(b"p%d=1" % i for i in range(40))),
         400),
    case("/login unknown parameter", raw(b"GET", b"/login?utm=" + q(SQL_OR)), 302,
         why="an unknown parameter is ignored; starting a login stores nothing"),
    case("/login control byte in the query", raw(b"GET", b"/login?next=/\x01"), 400, "nginx"),
    case("/callback code=%zz", raw(b"GET", b"/callback?code=%zz&state=" + STATE, [cookie(OAUTH)]), 400),
    case("/callback code=%00", raw(b"GET", b"/callback?code=%00&state=" + STATE, [cookie(OAUTH)]), 400),
    case("/callback two code", raw(b"GET", b"/callback?code=a" + MARK.encode() + b"&code=b" +
                                   MARK.encode() + b"&state=" + STATE, [cookie(OAUTH)]), 400),
    case("/callback two state", raw(b"GET", b"/callback?code=a" + MARK.encode() + b"&state=" + STATE +
                                    b"&state=" + STATE, [cookie(OAUTH)]), 400),
    case("/callback SQL as the code, real state", raw(b"GET", b"/callback?code=" + q(SQL_DROP) +
                                                      b"&state=" + STATE, [cookie(OAUTH)]), 400),
    case("/callback code of 2 KB", raw(b"GET", b"/callback?code=" + b"c" * 2048 + b"&state=" + STATE,
                                       [cookie(OAUTH)]), 400),
    case("/callback SQL as the state", raw(b"GET", b"/callback?code=c" + MARK.encode() + b"&state=" +
                                           q(SQL_OR), [cookie(OAUTH)]), 400),
    case("/callback state of another login", raw(b"GET", b"/callback?code=c" + MARK.encode() +
                                                  b"&state=" + b"A" * 43, [cookie(OAUTH)]), 400),
    case("/callback real state, no login cookie", raw(b"GET", b"/callback?code=c" + MARK.encode() +
                                                       b"&state=" + STATE), 400),
    case("/callback SQL as the error", raw(b"GET", b"/callback?error=" + q(SQL_OR)), 400),
    case("/me?%zz with the session", raw(b"GET", b"/me?%zz&x=%00", [cookie(b"%s=%s" % (
        SESSION_COOKIE.encode(), SESSION))]), 200, why=LOGGED_IN),
    case("/me/token with SQL in the query and the session",
         raw(b"GET", b"/me/token?access_token=" + q(SQL_OR), [cookie(b"%s=%s" % (
             SESSION_COOKIE.encode(), SESSION))]), 200, why=LOGGED_IN),

    # --- headers ---------------------------------------------------------------
    case("one header of 100 KB", raw(b"GET", b"/healthz", [(b"X-Big", b"b" * 102400)]), 400, "nginx"),
    case("200 headers of 5 KB in all", raw(b"GET", b"/healthz",
                                           [(b"X-H%d" % i, b"v" + MARK.encode()) for i in range(200)]),
         200, why="within nginx's header buffers; /healthz reads no header"),
    case("200 headers of 40 KB in all", raw(b"GET", b"/healthz",
                                            [(b"X-H%d" % i, b"v" * 200) for i in range(200)]), 400, "nginx"),
    case("cookie of 20 KB", raw(b"GET", b"/me", [cookie(b"%s=%s" % (SESSION_COOKIE.encode(),
                                                                   b"c" * 20480))]), 400, "nginx"),
    case("cookie of 7 KB (within nginx's bound) with the session",
         raw(b"GET", b"/me", [cookie(b"junk=" + b"j" * 7000 + b"; %s=%s" % (SESSION_COOKIE.encode(),
                                                                            SESSION))]), 200,
         why=LOGGED_IN),
    case("40 cookies, the session last", raw(b"GET", b"/me", [cookie(
        b"; ".join(b"c%d=%s" % (i, MARK.encode()) for i in range(40)) +
        b"; %s=%s" % (SESSION_COOKIE.encode(), SESSION))]), 200,
         why="other applications' cookies, however many, do not hide baa's own"),
    case("a nameless cookie before the session", raw(b"GET", b"/me", [cookie(
        b"=%s; junk; %s=%s" % (MARK.encode(), SESSION_COOKIE.encode(), SESSION))]), 200,
         why="a malformed pair of another application does not hide baa's own"),
    case("the session cookie twice", raw(b"GET", b"/me", [cookie(b"%s=%s; %s=%s" % (
        SESSION_COOKIE.encode(), SESSION, SESSION_COOKIE.encode(), SESSION))]), 401),
    case("the session cookie and a planted one of the same name", raw(b"GET", b"/me", [cookie(
        b"%s=%s; %s=%s" % (SESSION_COOKIE.encode(), q(SQL_OR), SESSION_COOKIE.encode(), SESSION))]), 401),
    case("NUL in a header value", raw(b"GET", b"/healthz", [(b"X-A", b"a\x00b")]), 400, "nginx"),
    case("NUL in a header name", raw(b"GET", b"/healthz", [(b"X-\x00A", b"ab")]), 400, "nginx"),
    case("NUL in the cookie", raw(b"GET", b"/me", [cookie(b"%s=%s\x00x" % (SESSION_COOKIE.encode(),
                                                                          SESSION))]), 400, "nginx"),
    case("bare CR in a header value", raw(b"GET", b"/healthz", [(b"X-A", b"a\rb")]), 400, "nginx"),
    case("control bytes in a header value", raw(b"GET", b"/healthz", [(b"X-A", b"\x01\x02\x1b[31m\x7f")]),
         200, why="/healthz reads no header"),
    case("control bytes in the session cookie", raw(b"GET", b"/me", [cookie(
        b"%s=%s\x01\x1b" % (SESSION_COOKIE.encode(), SESSION))]), 401),
    case("invalid UTF-8 in the session cookie", raw(b"GET", b"/me", [cookie(
        b"%s=\xff\xfe\xc0\xaf%s" % (SESSION_COOKIE.encode(), MARK.encode()))]), 401),
    case("invalid UTF-8 in a header value", raw(b"GET", b"/me", [(b"User-Agent", b"\xff\xfe\xc0\xaf")]), 401),
    case("header name with a space", raw(b"GET", b"/healthz", [b"X Bad: 1"]), 400, "nginx"),
    case("header name with an underscore", raw(b"GET", b"/healthz", [b"X_Bad: 1"]), 200, why=IGNORED),
    case("header line without a colon", raw(b"GET", b"/healthz", [b"NoColonHere"]), 200, why=IGNORED),
    case("folded header line", raw(b"GET", b"/healthz", [b"X-A: a", b" folded"]), 400, "nginx"),
    case("two Cookie headers, both SQL", raw(b"GET", b"/me", [cookie(b"a=" + q(SQL_OR)),
                                                              cookie(SESSION_COOKIE.encode() + b"=" +
                                                                     q(SQL_DROP))]), 401),
    case("percent-encoded session cookie", raw(b"GET", b"/me", [cookie(
        b"%s=%s%%00" % (SESSION_COOKIE.encode(), SESSION))]), 401),

    # --- bodies ----------------------------------------------------------------
    case("body on GET /healthz", raw(b"GET", b"/healthz", body=b"a=" + MARK.encode()), 200,
         why="/healthz reads no body"),
    case("body on GET /me with the session", me(body=b"a=" + MARK.encode()), 200, why=LOGGED_IN),
    case("body of 20 KB", raw(b"POST", b"/logout", body=b"a=" + b"x" * 20480), 413, "nginx"),
    case("chunked body of 20 KB", raw(b"POST", b"/logout", [(b"Transfer-Encoding", b"chunked")],
                                      body=b"5000\r\n" + b"x" * 0x5000 + b"\r\n0\r\n\r\n", length=False),
         413, "nginx"),
    case("declared 20 KB with Expect: 100-continue",
         raw(b"POST", b"/logout", [(b"Content-Length", b"20480"), (b"Expect", b"100-continue")]),
         413, "nginx"),
    case("small chunked body on POST /logout", raw(b"POST", b"/logout",
                                                   [(b"Transfer-Encoding", b"chunked")],
                                                   body=b"3\r\na=1\r\n0\r\n\r\n", length=False), 200,
         why="logging out without a session only clears the cookie; the body is not read"),
    case("chunk size that is not hex", raw(b"POST", b"/logout", [(b"Transfer-Encoding", b"chunked")],
                                           body=b"zz\r\nabc\r\n0\r\n\r\n", length=False), 400, "nginx"),
    case("Content-Length and Transfer-Encoding", raw(
        b"POST", b"/logout", [(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")],
        body=b"3\r\na=1\r\n0\r\n\r\n", length=False), 400, "nginx"),
    case("unknown Transfer-Encoding", raw(b"POST", b"/logout", [(b"Transfer-Encoding", b"gzip")],
                                          body=b"abc", length=False), 501, "nginx",
         why="nginx's own answer to a transfer coding it does not implement (RFC 9112 6.1); "
             "baa never sees it"),
    case("negative Content-Length", raw(b"POST", b"/logout", [(b"Content-Length", b"-1")]), 400, "nginx"),
    case("Content-Length not a number", raw(b"POST", b"/logout", [(b"Content-Length", b"abc")]), 400,
         "nginx"),
    case("two different Content-Length", raw(b"POST", b"/logout", [(b"Content-Length", b"1"),
                                                                   (b"Content-Length", b"2")],
                                             body=b"ab", length=False), 400, "nginx"),
    case("Content-Length shorter than the body", raw(b"POST", b"/logout", [(b"Content-Length", b"2")],
                                                    body=b"a=1&b=" + MARK.encode(), length=False), 200,
         why="nginx reads the declared 2 bytes and closes (Connection: close); logout without a "
             "session changes nothing"),
    case("Content-Length longer than the body, then the client's end",
         raw(b"POST", b"/logout", [(b"Content-Length", b"100")], body=b"a=" + MARK.encode(), length=False),
         CLOSED, "nginx", half_close=True),
    case("SQL body on DELETE /me", raw(b"DELETE", b"/me", [(b"Content-Type",
                                                          b"application/x-www-form-urlencoded")],
                                       body=b"id=" + q(SQL_DROP)), 401),

    # --- another site's page sending the browser's cookies -------------------------
    case("POST /logout with the session, Sec-Fetch-Site: cross-site", raw(b"POST", b"/logout", [
        (b"Sec-Fetch-Site", b"cross-site"), cookie(b"%s=%s" % (SESSION_COOKIE.encode(), SESSION))]), 403),
    case("DELETE /me with the session, Origin of another site", raw(b"DELETE", b"/me", [
        (b"Origin", b"https://evil.example"), cookie(b"%s=%s" % (SESSION_COOKIE.encode(), SESSION))]),
         403),
    case("POST /logout?everywhere=1 with the session, SQL as Sec-Fetch-Site",
         raw(b"POST", b"/logout?everywhere=1", [(b"Sec-Fetch-Site", SQL_OR.encode()), cookie(
             b"%s=%s" % (SESSION_COOKIE.encode(), SESSION))]), 403),
    case("DELETE /me/sessions/1 with the session, SQL as the Origin",
         raw(b"DELETE", b"/me/sessions/1", [(b"Origin", SQL_DROP.encode()), cookie(
             b"%s=%s" % (SESSION_COOKIE.encode(), SESSION))]), 403),
]


def send(port, data, timeout=15, half_close=False):
    """Sends data on a new TLS connection -> (status, headers, body) or
    (CLOSED, None, b"") when the connection ends without an answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    tls = _SSL.wrap_socket(sock)
    try:
        try:
            tls.sendall(data)
            if half_close:
                # TCP's half-close under TLS (SSLSocket.shutdown would end TLS too)
                socket.socket.shutdown(tls, socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # nginx refused before reading everything: its answer may be there
        method = data.split(b" ", 1)[0].decode("latin-1")
        resp = http.client.HTTPResponse(tls, method=method)
        try:
            resp.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError):
            return CLOSED, None, b""
        body = resp.read() if method != "HEAD" else b""
        return resp.status, resp.headers, body
    finally:
        tls.close()


class HostileInputTest(SpotifyTestCase):
    """The matrix, through the shipped nginx site, against a logged-in user."""

    class_stack = False
    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        stack = DeployStack(cls.db, instances=2, workers=2, spotify_instances=1,
                            render_env={"LOGIN_RATE": "1000r/s", "LOGIN_BURST": "1000"})
        # The fake Spotify knows TEST_REDIRECT_URI; the test plays the browser.
        stack.redirect_uri = TEST_REDIRECT_URI
        cls.addClassCleanup(stack.stop)
        cls.stack = stack.start(fake_url=cls.fake.url)

    def processes(self):
        return {inst.index: (inst.baa.pid, inst.workers()) for inst in self.stack.instances}

    def users_dump(self):
        return self.pg.psql("SELECT * FROM users ORDER BY id", db=self.db)

    def sessions_dump(self):
        # not last_seen_at and expires_at: a request moves them on
        return self.pg.psql("SELECT id, token_hash, user_id, created_at FROM sessions ORDER BY id",
                            db=self.db)

    def baa_log(self):
        return self.stack.instances[0].log() + self.stack.instances[1].log()

    def login_in_progress(self):
        b = self.stack.browser()
        resp = b.start_login()
        self.assertEqual(resp.status, 302, resp)
        oauth = b.jar[OAUTH_COOKIE]
        return oauth, CookieSigner.parse_oauth(oauth)["state"]

    def check(self, c, status, headers, body):
        what = "%s: %r %r" % (c.name, status, body[:300])
        self.assertIn(status, c.expect, what)
        if status == CLOSED:
            return
        if status >= 500:
            # Only nginx's own protocol answers, each justified in the table.
            self.assertTrue(c.by == "nginx" and c.why, "%s: a 5xx" % what)
        if not 400 <= status < 500:
            self.assertTrue(c.why, "%s: not a 4xx, and the table gives no reason" % what)
        # baa answers JSON (and /metrics' text, and redirects marked
        # no-store); nginx's own pages are HTML.
        ctype = headers.get("Content-Type", "")
        by_baa = (ctype.startswith("application/json") or ctype.startswith("text/plain; version=0.0.4")
                  or (status == 302 and headers.get("Cache-Control") == "no-store"))
        self.assertEqual("baa" if by_baa else "nginx", c.by, "%s (Content-Type %r)" % (what, ctype))

    def test_hostile_matrix(self):
        r = self.stack.browser().login(self.fake)
        self.assertTrue(r.ok, r.describe() + self.stack.context())
        session = r.session_cookie
        oauth, state = self.login_in_progress()
        me_before = self.stack.browser().get("/me", cookies={SESSION_COOKIE: session})
        self.assertEqual(me_before.status, 200, me_before)
        token = self.stack.browser().get("/me/token", cookies={SESSION_COOKIE: session})
        self.assertEqual(token.status, 200, token)
        access_token = token.json()["access_token"]
        users_before = self.users_dump()
        self.assertEqual(len(users_before.splitlines()), 1, users_before)
        sessions_before = self.sessions_dump()
        self.assertEqual(len(sessions_before.splitlines()), 1, sessions_before)
        processes_before = self.processes()
        substitutions = {SESSION: session.encode(), OAUTH: b"%s=%s" % (OAUTH_COOKIE.encode(), oauth.encode()),
                         STATE: state.encode()}

        names = [c.name for c in MATRIX]
        self.assertEqual(len(names), len(set(names)), "two cases share a name")
        for c in MATRIX:
            data = c.request
            for k, v in substitutions.items():
                data = data.replace(k, v)
            with self.subTest(c.name):
                status, headers, body = send(self.stack.https_port, data, half_close=c.half_close)
                self.check(c, status, headers, body)

        self.assertEqual(self.processes(), processes_before, "a baa process died or was replaced" +
                         self.stack.context())
        self.assertEqual(self.users_dump(), users_before, "the users table changed")
        self.assertEqual(self.sessions_dump(), sessions_before, "the sessions table changed")
        me_after = self.stack.browser().get("/me", cookies={SESSION_COOKIE: session})
        self.assertEqual((me_after.status, me_after.body), (me_before.status, me_before.body))
        self.assertEqual(self.stack.get("/healthz")[0], 200)

        log = self.baa_log()
        for line in log.splitlines():
            if line.strip():
                parse_logfmt(line)  # raises on a malformed (forged) line
        for secret in (MARK, session, session.split(".")[2], session.rpartition(".")[2], oauth, state,
                       r.code, access_token):
            self.assertNotIn(secret, log, "baa logged a value the cases sent")
        self.assertNotIn("event=worker_exited", log)
