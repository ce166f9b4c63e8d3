#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are committed; run this again only to change them (for example
after a change of the cookie format). Cookies are signed with the targets'
fixed secrets (FUZZ_SECRET, FUZZ_SECRET_OLD and the unlisted
FUZZ_SECRET_GONE in fuzz.h) and expire in 2100, so the targets'
verification accepts them and the fuzzer starts behind the MAC. Files
named regress-* are reproducers of fixed bugs: this script leaves them.
"""
import base64
import hashlib
import hmac
import os

FUZZ_SECRET = b"baa-fuzzing-key,fixed,at-least-thirty-two-bytes"
FUZZ_SECRET_OLD = b"baa-fuzzing-key,older,still-listed,32-bytes-or-more"
FUZZ_SECRET_GONE = b"baa-fuzzing-key,dropped,no-longer-listed,32-bytes"
EXPIRES = 4102444800  # 2100-01-01
STATE = "q0bG5y2M2R4Jw8xv3o8WZ1mP0s2T4uV6xY8zA0bC2dE"  # 43 characters
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


SID = b64url(b"a session id of thirty-two bytes")  # 43 characters


def fcgi_record(kind, content, padding=0):
    """A FastCGI record of request 1, as text (latin-1 bytes)."""
    n = len(content)
    return "".join(map(chr, (1, kind, 0, 1, n >> 8, n & 255, padding, 0))) + content + \
        "\0" * padding


def fcgi_pair(name, value):
    return chr(len(name)) + chr(len(value)) + name + value


def fcgi_request(method, uri, body=""):
    params = fcgi_pair("REQUEST_METHOD", method) + fcgi_pair("REQUEST_URI", uri)
    out = fcgi_record(1, "\0\1\1\0\0\0\0\0") + fcgi_record(4, params) + fcgi_record(4, "")
    if body:
        out += fcgi_record(5, body)
    return out + fcgi_record(5, "")


FCGI_GET = fcgi_request("GET", "/me")
FCGI_POST = fcgi_request("POST", "/logout", "everywhere=1")


def hkdf(secret, info):
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def sign(key, purpose, fields):
    mac = hmac.new(key, purpose.encode() + b"|" + fields.encode(), hashlib.sha256).digest()
    return fields + "." + b64url(mac)


def session_key(secret=FUZZ_SECRET):
    return hkdf(secret, b"baa session cookie v1")


def oauth_key(secret=FUZZ_SECRET):
    return hkdf(secret, b"baa oauth cookie v1")


def kid(secret=FUZZ_SECRET):
    """Names the secret in a v2 cookie: 6 bytes of an HMAC under its session key."""
    return b64url(hmac.new(session_key(secret), b"baa cookie key id", hashlib.sha256).digest()[:6])


def session_fields(sid=SID, expires=EXPIRES, secret=FUZZ_SECRET):
    return "v2.%s.%s.%d" % (kid(secret), sid, expires)


def legacy_session_fields(user_id=42, generation=7, expires=EXPIRES):
    return "v1.%d.%d.%d" % (user_id, generation, expires)


def login_fields(next_path="/", expires=EXPIRES, state=STATE, secret=FUZZ_SECRET):
    return "v2.%s.%s.%d.%s" % (kid(secret), state, expires, b64url(next_path.encode()))


def legacy_login_fields(next_path="/", expires=EXPIRES, state=STATE):
    return "v1.%s.%d.%s" % (state, expires, b64url(next_path.encode()))


# The MAC purposes are the first cookie names, kept through the rename.
def session_cookie(secret=FUZZ_SECRET, **kw):
    return sign(session_key(secret), "baa_session", session_fields(secret=secret, **kw))


def legacy_session_cookie(secret=FUZZ_SECRET, **kw):
    return sign(session_key(secret), "baa_session", legacy_session_fields(**kw))


def login_cookie(secret=FUZZ_SECRET, **kw):
    return sign(oauth_key(secret), "baa_oauth", login_fields(secret=secret, **kw))


def legacy_login_cookie(secret=FUZZ_SECRET, **kw):
    return sign(oauth_key(secret), "baa_oauth", legacy_login_fields(**kw))


def fastcgi(method, uri, query="", cookie=None, length="", extra=()):
    """The parameters nginx sends (fastcgi_params), one per line."""
    lines = ["QUERY_STRING=" + query, "REQUEST_METHOD=" + method,
             "CONTENT_TYPE=", "CONTENT_LENGTH=" + length,
             "SCRIPT_NAME=" + uri, "REQUEST_URI=" + uri + ("?" + query if query else ""),
             "DOCUMENT_URI=" + uri, "DOCUMENT_ROOT=/usr/share/nginx/html",
             "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_SCHEME=https", "HTTPS=on",
             "GATEWAY_INTERFACE=CGI/1.1", "SERVER_SOFTWARE=nginx/1.22.1",
             "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=51234", "SERVER_ADDR=127.0.0.1",
             "SERVER_PORT=8443", "SERVER_NAME=baa.example.org", "REDIRECT_STATUS=200",
             "HTTP_HOST=baa.example.org", "HTTP_USER_AGENT=Mozilla/5.0"]
    if cookie is not None:
        lines.append("HTTP_COOKIE=" + cookie)
    lines.extend(extra)
    return "\n".join(lines)


TOKENS = ('{"access_token":"BQD3mK-example_token.value~1","token_type":"Bearer",'
          '"expires_in":3600,"refresh_token":"AQA-refresh_token","scope":'
          '"user-read-private user-read-email"}')

SEEDS = {
    "query": {
        "login-next": "next=%2Fme",
        "login-next-plain": "next=/account?tab=1",
        "callback": "code=AQBx-7yWcS9X_code.value~&state=" + STATE,
        "callback-denied": "error=access_denied&state=" + STATE,
        "duplicate-state": "state=a&code=b&state=c",
        "empty-pieces": "a=1&&b=2&",
        "plus-and-percent": "a=x+y%20z&%41=%7e",
        "bad-percent": "a=%zz&b=%4",
        "encoded-nul": "a=%00",
        "next-other-origin": "next=//evil.example",
        "next-backslash": "next=/%5Cevil.example",
        "utf8": "name=%E2%82%AC%F0%9F%90%91",
        "many-pairs": "&".join("p%d=%d" % (i, i) for i in range(33)),
    },
    "form": {
        "form": "grant_type=authorization_code&code=AQB&redirect_uri=https%3A%2F%2Fbaa.example.org%2Fcallback",
        "raw-nul": "a=1\x00&b=2",
        "no-value": "a&b=&=c",
        "percent-at-end": "a=%",
        "percent-edge": "a=%4&b=%41",
        "plus": "+=+",
        "uppercase-lowercase-hex": "a=%2f%2F",
        "many-pairs": "&".join("k=v" for _ in range(32)),
    },
    "cookie": {
        "session": "__Host-baa_session=" + session_cookie(),
        "login": "__Host-baa_oauth=" + login_cookie(next_path="/me/token"),
        "both": "theme=dark; __Host-baa_oauth=" + login_cookie()
                + "; __Host-baa_session=" + session_cookie(),
        "legacy-session": "baa_session=" + legacy_session_cookie(),
        "legacy-login": "baa_oauth=" + legacy_login_cookie(next_path="/me/token"),
        "legacy-and-new": "baa_session=" + legacy_session_cookie()
                          + "; __Host-baa_session=" + session_cookie(),
        "stale-first": "__Host-baa_session=v2.AAAAAAAA.x.1.AAAA; __Host-baa_session="
                       + session_cookie(),
        "blanks": "  a=1 ;\tb = 2\t;; c=",
        "no-name": "=x; a=1",
        "no-equals": "a=1; bare",
        "expired": "__Host-baa_session=" + session_cookie(expires=1600000000),
        "host-session": "theme=dark; __Host-baa_session=v2.AAAAAAAA." + STATE + ".4102444800.mac",
        "host-both": "__Host-baa_oauth=v2.AAAAAAAA." + STATE + ".4102444800.Lw.mac; "
                     "__Host-baa_session=v2.AAAAAAAA.sid.4102444800.mac",
        "host-duplicate": "__Host-baa_session=a; x=1; __Host-baa_session=b",
        "host-prefix": "__Host-baa_session2=x; __Host-baa_session_old=y; __Host-baa_session=z",
        "many-foreign": "".join("_ga_%d=GA1.2.%d; " % (i, i) for i in range(120))
                        + "__Host-baa_session=mine",
        "garbage-pairs": "=; ==; \x01\xff; \"q; a=b=c;;\t; __Host-baa_session = mine \t",
        "nul-inside": "__Host-baa_session=mine; a=\x00b",
    },
    "session": {
        # \x00: the bytes as a cookie value
        "raw-session": "\x00" + session_cookie(),
        "raw-session-old-key": "\x00" + session_cookie(secret=FUZZ_SECRET_OLD),
        "raw-session-dropped-key": "\x00" + session_cookie(secret=FUZZ_SECRET_GONE),
        "raw-legacy-session": "\x00" + legacy_session_cookie(),
        "raw-legacy-session-old-key": "\x00" + legacy_session_cookie(secret=FUZZ_SECRET_OLD),
        "raw-login": "\x00" + login_cookie(next_path="/account?x=1"),
        "raw-login-old-key": "\x00" + login_cookie(secret=FUZZ_SECRET_OLD, next_path="/me"),
        "raw-legacy-login": "\x00" + legacy_login_cookie(next_path="/account?x=1"),
        "raw-forged": "\x00v1.1.0.4102444800.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        # \x01 and \x02: fields the target signs under the first secret
        "signed-session": "\x01" + session_fields(),
        "signed-session-old-kid": "\x01" + session_fields(secret=FUZZ_SECRET_OLD),
        "signed-session-short-id": "\x01" + session_fields(sid=SID[:42]),
        "signed-legacy-session": "\x01" + legacy_session_fields(),
        "signed-session-leading-zero": "\x01v1.042.7.4102444800",
        "signed-session-large": "\x01v1.999999999999999999.0.999999999999999999",
        "signed-session-five-fields": "\x01v1.1.2.3.4",
        "signed-login": "\x02" + login_fields(next_path="/me"),
        "signed-legacy-login": "\x02" + legacy_login_fields(next_path="/me"),
        "signed-login-other-origin": "\x02" + login_fields(next_path="//evil.example"),
        "signed-login-short-state": "\x02v1.abc.4102444800.Lw",
        # \x03: base64url
        "base64url": "\x03" + b64url(b"\x00\xff\x10 baa"),
        "base64url-noncanonical": "\x03Lx",
        # \x04 and \x05, then the secret (0 first, 1 second, 2 dropped):
        # what follows "v2.<kid>."
        "keyed-session": "\x04\x00%s.%d" % (SID, EXPIRES),
        "keyed-session-old-key": "\x04\x01%s.%d" % (SID, EXPIRES),
        "keyed-session-dropped-key": "\x04\x02%s.%d" % (SID, EXPIRES),
        "keyed-login": "\x05\x00%s.%d.%s" % (STATE, EXPIRES, b64url(b"/me")),
        "keyed-login-old-key": "\x05\x01%s.%d.%s" % (STATE, EXPIRES, b64url(b"/")),
        "keyed-login-dropped-key": "\x05\x02%s.%d.%s" % (STATE, EXPIRES, b64url(b"/")),
    },
    "fastcgi": {
        "get-me": fastcgi("GET", "/me", cookie="__Host-baa_session=" + session_cookie()),
        "get-me-legacy": fastcgi("GET", "/me", cookie="baa_session=" + legacy_session_cookie()),
        "head-healthz": fastcgi("HEAD", "/healthz"),
        "callback": fastcgi("GET", "/callback", query="code=x&state=" + STATE,
                            cookie="__Host-baa_oauth=" + login_cookie()),
        "post-logout": fastcgi("POST", "/logout", length="0"),
        "post-logout-same-origin": fastcgi(
            "POST", "/logout", query="everywhere=1", length="0",
            cookie="__Host-baa_session=" + session_cookie(),
            extra=("HTTP_SEC_FETCH_SITE=same-origin", "HTTP_ORIGIN=https://baa.example.org")),
        "post-logout-cross-site": fastcgi(
            "POST", "/logout", length="0",
            extra=("HTTP_SEC_FETCH_SITE=cross-site", "HTTP_ORIGIN=https://evil.example")),
        "delete-me": fastcgi("DELETE", "/me"),
        "get-sessions": fastcgi("GET", "/me/sessions"),
        "delete-session": fastcgi("DELETE", "/me/sessions/12",
                                  extra=("HTTP_SEC_FETCH_SITE=same-origin",)),
        "delete-session-no-id": fastcgi("DELETE", "/me/sessions/"),
        "get-session-405": fastcgi("GET", "/me/sessions/12"),
        "get-activity": fastcgi("GET", "/me/activity"),
        "put-me-405": fastcgi("PUT", "/me"),
        "unknown-404": fastcgi("GET", "/nope"),
        "odd-method": fastcgi("BREW", "/me"),
        "length-bad": fastcgi("POST", "/logout", length="-1"),
        "length-large": fastcgi("POST", "/logout", length="999999999999"),
        "script-name-only": "REQUEST_METHOD=GET\nSCRIPT_NAME=/healthz",
        "relative-path": "REQUEST_METHOD=GET\nDOCUMENT_URI=me",
        "no-equals": "REQUEST_METHOD\nDOCUMENT_URI",
    },
    "spotify_tokens": {
        "code-exchange": "\x01" + TOKENS,
        "refresh": '\x00{"access_token":"BQD-new","token_type":"Bearer","expires_in":3600,'
                   '"scope":"user-read-private"}',
        "refresh-rotated": "\x00" + TOKENS,
        "invalid-grant": '\x00{"error":"invalid_grant","error_description":"Refresh token revoked"}',
        "invalid-client": '\x01{"error":"invalid_client","error_description":"Invalid client"}',
        "lowercase-bearer": '\x00{"access_token":"a","token_type":"bearer","expires_in":1}',
        "expires-odd": '\x00{"access_token":"a","token_type":"Bearer","expires_in":1e400}',
        "expires-string": '\x00{"access_token":"a","token_type":"Bearer","expires_in":"3600"}',
        "null-refresh": '\x01{"access_token":"a","token_type":"Bearer","expires_in":60,'
                        '"refresh_token":null}',
        "escapes": '\x00{"access_token":"a\\u0041\\ud83d\\ude00","token_type":"Bearer",'
                   '"expires_in":60,"scope":"\\u00e9"}',
        "not-object": "\x00[1,2,3]",
        "truncated": '\x01{"access_token":"a","token_',
        "quota-exceeded": '\x01{"error":{"status":429,"message":"Too many requests",'
                          '"reason":"QUOTA_EXCEEDED"}}',
        "short-term-limit": '\x00{"error":{"status":429,"message":"API rate limit exceeded"}}',
    },
    "spotify_user": {
        "profile": '{"country":"SE","display_name":"JM Wizzler","email":"email@example.com",'
                   '"explicit_content":{"filter_enabled":false,"filter_locked":false},'
                   '"external_urls":{"spotify":"https://open.spotify.com/user/wizzler"},'
                   '"followers":{"href":null,"total":3829},'
                   '"href":"https://api.spotify.com/v1/users/wizzler","id":"wizzler",'
                   '"images":[{"height":null,"url":"https://i.scdn.co/image/ab67","width":null}],'
                   '"product":"premium","type":"user","uri":"spotify:user:wizzler"}',
        "null-name": '{"id":"31l77y2al5lnn7mxfrmd4bpbbfaa","display_name":null}',
        "no-name": '{"id":"x"}',
        "numeric-id": '{"id":12345,"display_name":"n"}',
        "empty-id": '{"id":"","display_name":"n"}',
        "unicode-name": '{"id":"u","display_name":"Bj\\u00f6rk \\ud83d\\udc11 \\u0000x"}',
        "duplicate-keys": '{"id":"a","id":"b"}',
        "deep": "[" * 200 + "]" * 200,
        "profile-2026": '{"account_id":"acct-2f0c4e1b7a9d3c55","country":"SE",'
                        '"display_name":"JM Wizzler","email":"email@example.com",'
                        '"href":"https://api.spotify.com/v1/users/wizzler","id":"wizzler",'
                        '"images":[],"product":"premium","type":"user",'
                        '"uri":"spotify:user:wizzler"}',
        "development-mode": '{"display_name":"Dev","external_urls":{"spotify":'
                            '"https://open.spotify.com/user/dev"},"href":'
                            '"https://api.spotify.com/v1/users/dev","id":"dev",'
                            '"account_id":"acct-0123456789abcdef","images":[],"type":"user",'
                            '"uri":"spotify:user:dev"}',
        "account-null": '{"id":"u","account_id":null}',
        "account-empty": '{"id":"u","account_id":""}',
        "account-number": '{"id":"u","account_id":7}',
        "account-escapes": '{"id":"u","account_id":"a\\u00e5\\ud83d\\udc11\\u0000b"}',
        "account-long": '{"id":"u","account_id":"%s"}' % ("k" * 257),
        "account-duplicate": '{"id":"u","account_id":"a","account_id":"b"}',
    },
    "client": {
        "origin": "https://baa.example.org",
        "origin-port": "http://localhost:8080",
        "origin-upper": "HTTPS://BAA.Example.ORG:443",
        "origin-ipv6": "https://[2001:DB8::1]:8443",
        "url": "https://baa.example.org/callback?code=x#top",
        "origin-null": "null",
        "origin-userinfo": "https://user:pw@baa.example.org",
        "ua-firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "ua-edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                   "like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        "ua-iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
                     "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 "
                     "Safari/604.1",
        "ua-curl": "curl/8.5.0",
        "ipv4": "203.0.113.45",
        "ipv6": "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        "ipv4-mapped": "::ffff:192.0.2.128",
        "ipv6-zone": "fe80::1%eth0",
        "unix": "unix:",
    },
    "fcgi_records": {
        "get": FCGI_GET,
        "post": FCGI_POST,
        "padded": fcgi_record(4, "A" * 5, padding=3) + fcgi_record(5, ""),
        "get-cut": FCGI_GET[:-3],
        "http": "GET / HTTP/1.1\r\n\r\n",
        "stdin-in-padding": fcgi_record(4, "ab", padding=8)[:10] + fcgi_record(5, ""),
    },
    "scopes": {
        "strict": "\x00user-read-email playlist-read-private",
        "strict-spaces": "\x00  streaming   streaming ",
        "strict-refused": "\x00user_read",
        "loose": "\x01user_read.x user-read-email",
        "empty": "\x00",
        "upper": "\x01User-Read",
    },
    "retry_after": {
        "seconds": "30",
        "zero": "0",
        "cap": "3600",
        "above-cap": "86400",
        "http-date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "negative": "-1",
        "blank": " 5",
        "empty": "",
    },
}


def main():
    for target, seeds in SEEDS.items():
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if not name.startswith("regress-"):
                os.remove(os.path.join(folder, name))
        for name, text in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(text.encode("latin-1"))


if __name__ == "__main__":
    main()
