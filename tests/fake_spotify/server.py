#!/usr/bin/python3
"""A local fake of Spotify's Accounts service and Web API, for baa's tests.

baa logs users in with the OAuth 2.0 authorization code flow with PKCE and
stores their tokens. Tests and the local dev run have no internet, so they
point baa at this server instead of accounts.spotify.com / api.spotify.com.
It checks what Spotify checks (client credentials, registered redirect URIs,
PKCE S256, single-use expiring codes, refresh tokens) so that a baa bug that
Spotify would reject is rejected here too, and it can misbehave on demand
(faults) so that baa's error handling can be tested.

Python 3 standard library only. Loopback only. State lives in memory.

    server.py --host 127.0.0.1 --port 0 --port-file /tmp/p \\
              --client-id ID --client-secret SECRET \\
              --redirect-uri https://127.0.0.1:8443/callback [--redirect-uri ...] \\
              [--user-id demo-user] [--display-name "Demo User"] \\
              [--tls-cert server.pem --tls-key server.key]

With --tls-cert and --tls-key it serves HTTPS only (certs.py makes a
throwaway CA and a certificate for the loopback addresses), as Spotify does;
see "Transport" at the end.

Endpoints (as Spotify):
  GET  /authorize    auto-approves the configured user (302 to redirect_uri)
  POST /api/token    grant_type=authorization_code | refresh_token
  GET  /v1/me        the profile of the token's account, as the account is now
Control API for tests (JSON, not like Spotify), see control() below:
  GET  /_fake/health                      {"ok": true}
  GET  /_fake/config, POST /_fake/config  read / merge settings (below)
  POST /_fake/reset                       default config, only the first account,
                                          no codes/tokens/log/stats/rate window
  POST /_fake/revoke_refresh_tokens       every refresh token stops working
  POST /_fake/expire_access_tokens        every access token expires now
  POST /_fake/age_grants {"seconds": N}   every grant authorized N seconds earlier
                                          -> {"ok": true, "aged": grants}
  GET  /_fake/accounts                    every account: [{"account_id", "id", ...}]
  POST /_fake/accounts                    create or update (rename) one account,
                                          given as a `user` object; -> its record;
                                          who logs in next does not change
  GET  /_fake/requests[?endpoint=E]       the request log (full values)
  GET  /_fake/stats                       request counts, and rate_limited
  GET  /_fake/tokens                      codes and tokens issued, their account
                                          (user_id is its id now), their state

Settings (POST /_fake/config merges them; GET shows them; an unknown or bad
one is a 400 and changes nothing):
  deny                     false | true: /authorize answers access_denied
  access_token_length      300
  expires_in               3600 (access tokens)
  code_lifetime            600
  rotate_refresh_tokens    false
  revoke_on_code_reuse     false
  allow_public_clients     false
  refresh_token_lifetime   15552000 (180 days, counted from the grant's start)
  invalid_grant_on_refresh false | true (every refresh) | N (the next N
                           refreshes, counting down here, then false); the
                           refresh tokens stay valid
  omit_account_id          false | true: /v1/me without account_id
  development_mode         false | true
  allowed_users            null (everyone) | [ids or account_ids] (at most 100)
  rate_limit               null | {"calls": N, "window": 30, "retry_after": S
                           or null, "reason": null or "QUOTA_EXCEEDED"}
  user                     {"id", "account_id", "display_name", "email",
                           "country", "product"}: who the next /authorize approves
  distinct_users           false | true: every approving /authorize logs in
                           a new account, id "<user.id>-<n>" (n counting
                           from 1 since the reset), as many people logging
                           in at once would; `user` stays who it was
  faults                   {"authorize"|"token"|"me": F or null}
  drop_scopes              [] | [scope names]: the consent grants what
                           /authorize asked for but these (Spotify may
                           grant less than asked); the code, its tokens and
                           the token answers' `scope` say what was granted

Accounts. Every user is an account with an account_id (Spotify's "public,
immutable" identifier; its `id` may change). `user` without account_id
means the account "acct-" + the first 16 hex digits of sha256(id), so a new
id alone is another account. The fake keeps a registry of accounts keyed by
account_id; codes and tokens belong to an account, and /v1/me shows the
account's record as it is now. Giving `user` (or POST /_fake/accounts) an
existing account_id with a new id renames that account: tokens issued
before see the new id. An existing account keeps the fields not given; a
new one gets display_name = id, email = id@example.com, country SE,
product premium. Ids are not unique across accounts (an id may come back
on another account). omit_account_id drops account_id from /v1/me
(answers from before May 2026).

Development mode (Spotify's February 2026 rules). With development_mode,
/v1/me omits country, email, explicit_content, followers and product
whatever the scopes, and a user whose id or account_id is not in
allowed_users (unless it is null) is approved at /authorize and gets
tokens that refresh, but /v1/me answers 403 {"error": {"status": 403,
"message": "Check settings on developer.spotify.com/dashboard, the user
may not be registered."}} (after the token checks: a bad token is still
401). allowed_users does not count outside development mode, as an app
with extended quota serves everyone. The owner's Premium is not modelled.

The six-month grant. A code exchange starts a grant; its refresh tokens
(rotated ones too) answer 400 invalid_grant "Refresh token expired" once
refresh_token_lifetime seconds have passed since that exchange; a refresh
does not extend it, a new authorization starts a new grant. The lifetime
is read at each refresh, so shortening it also shortens grants already
made. /_fake/age_grants moves every grant's start into the past;
/_fake/tokens shows each refresh token's grant_expires_in and expired.
Access tokens keep their own expires_in.

Rate limits. Spotify limits each app over a rolling 30 s window and
answers 429 with Retry-After. With rate_limit set, every call to
/api/token and /v1/* (not /authorize, a browser page, nor /_fake/*)
counts; a call when `calls` admitted calls are in the last `window`
seconds answers 429, Retry-After: retry_after, or if null the seconds
until the oldest call leaves the window. Refused calls do not count, so
a client that waits out Retry-After gets through. The body is the
short-term one, {"error":{"status":429,"message":"API rate limit
exceeded"}}, or with reason QUOTA_EXCEEDED exactly (compact JSON, byte for
byte as the July 2026 changelog) {"error":{"status":429,"message":"Too
many requests","reason":"QUOTA_EXCEEDED"}}. The window starts empty when
rate_limit is set. It is checked before faults, and /_fake/stats counts
its refusals in rate_limited (the request log marks them rate_limited).

A fault F applies to the next requests of its endpoint (only those with
grant_type F.grant_type, if set; only F.times of them, if set, then it turns
itself off). F.delay_ms sleeps first, outside the lock. Then, if F has
close, status, body or reason, that replaces the answer: close drops the
connection without a byte; otherwise status (default 200, or 429 with a
reason) with body (default a Spotify-like error body for the status),
content_type, and Retry-After: F.retry_after if set. The default body of
a 429 is the short-term one above (a page at /authorize); F.reason gives
{"error":{"status":S,"message":M,"reason":R}} at any endpoint, M being
"Too many requests" for 429 (so reason QUOTA_EXCEEDED is the quota body).
The request is then not processed (a code is not used up), unless
F.process is true: then the fake does the work (issues tokens, rotates,
uses the code) and loses the answer. A fault with only delay_ms slows the
normal answer.

Choices where Spotify's behaviour is not documented:
  * invalid_client is 401 (with WWW-Authenticate: Basic) when an
    Authorization header was sent and is wrong, 400 otherwise.
    error_description is "Invalid client" for an unknown or malformed client
    and "Invalid client secret" for a wrong secret, as Spotify answers.
  * A failed code exchange (wrong verifier, wrong redirect_uri) does not use
    up the code; only a successful exchange does.
  * A reused code answers invalid_grant; with revoke_on_code_reuse the
    tokens issued for that code are revoked too (RFC 6749 4.1.2 "SHOULD"),
    off by default because Spotify does not document doing it.
  * PKCE is required at /authorize (baa always uses it).
  * The six months count from the code exchange (when the grant is made),
    not from the consent screen, a few seconds earlier at most.
  * An expired grant's refresh token answers "Refresh token expired"
    (Spotify documents invalid_grant, not the text); forced invalid_grant
    (invalid_grant_on_refresh) answers "Refresh token revoked".
  * A 429 at /api/token has the Web API's error body, not an OAuth one:
    one shape for every call, which is what a client reading the reason
    needs (Spotify does not document the Accounts service's 429 body).
  * Calls the rate limit refuses do not fill the window (Spotify does not
    say); with a fixed retry_after a client that keeps calling every
    Retry-After seconds is let in once the window has room.

Transport (the serving part below; the Spotify logic never sees sockets):
HTTP/1.1 with keep-alive, over TLS 1.2+ with --tls-cert (ALPN "http/1.1":
this fake has no HTTP/2). Every accepted connection is counted, and merged
into GET /_fake/stats (zeroed by /_fake/reset):
  connections       TCP connections accepted (the one asking included)
  tls_handshakes    TLS handshakes completed; tls_resumed of them resumed a
                    session; tls_failed: the client refused our certificate
                    or did not speak TLS
  api_connections   connections that carried /api/token or /v1/me: in
                    baa's tests only baa calls those, so this is how many
                    connections (and handshakes) baa opened
  GET  /_fake/connections       these counts, the settings below, and the
                                most recent connections (tls, version,
                                resumed, requests, api, open)
  POST /_fake/connections       {"keep_alive": bool, "resumption": bool}:
                                keep_alive false answers /api/token and
                                /v1/me with Connection: close (baa must
                                reconnect for each call; a browser's and
                                the control API's connections stay kept);
                                resumption false issues no session tickets
                                and forgets earlier ones (every handshake
                                is a full one)
  POST /_fake/drop_connections  closes every other open connection now,
                                without a TLS close_notify, as a server or
                                middlebox dropping idle connections does
"""

import argparse
import base64
import collections
import copy
import hashlib
import html
import http
import http.server
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

MAX_BODY = 64 * 1024          # request bodies above this answer 413
MAX_DRAIN = 1024 * 1024       # bytes read and dropped before closing after a 413
MAX_FIELDS = 100              # form / query parameters per request
MAX_LOG_ENTRIES = 10000       # request log entries kept (oldest dropped)
MAX_ITEMS = 100000            # codes / tokens kept per kind (oldest dropped)
MAX_ACCOUNTS = 10000          # accounts kept (oldest dropped; their tokens stop working)
CODE_LENGTH = 320             # Spotify's codes are a few hundred characters
REFRESH_TOKEN_LENGTH = 131
HANDLER_TIMEOUT = 30          # seconds a connection may idle or trickle
ENDPOINTS = ("authorize", "token", "me")
SIX_MONTHS = 15552000         # seconds a grant's refresh tokens live (180 days)
MAX_AGE = 10 ** 10            # seconds /_fake/age_grants may move grants back

# The scopes Spotify documents; anything else gets Spotify's "Illegal scope".
SPOTIFY_SCOPES = frozenset("""
    ugc-image-upload user-read-playback-state user-modify-playback-state
    user-read-currently-playing app-remote-control streaming
    playlist-read-private playlist-read-collaborative playlist-modify-private
    playlist-modify-public user-follow-modify user-follow-read
    user-read-playback-position user-top-read user-read-recently-played
    user-library-modify user-library-read user-read-email user-read-private
    user-personalized user-soa-link user-soa-unlink soa-manage-entitlements
    soa-manage-partner soa-create-partner
""".split())

CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")      # base64url(sha256), no padding
VERIFIER_RE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1

DEFAULT_CONFIG = {
    "deny": False,
    "access_token_length": 300,
    "expires_in": 3600,
    "rotate_refresh_tokens": False,
    "invalid_grant_on_refresh": False,
    "code_lifetime": 600,
    "refresh_token_lifetime": SIX_MONTHS,
    "revoke_on_code_reuse": False,
    "allow_public_clients": False,
    "omit_account_id": False,
    "development_mode": False,
    "allowed_users": None,
    "rate_limit": None,
    "faults": {"authorize": None, "token": None, "me": None},
    "drop_scopes": [],
    "distinct_users": False,
}
BOOL_SETTINGS = ("deny", "rotate_refresh_tokens", "revoke_on_code_reuse",
                 "allow_public_clients", "omit_account_id", "development_mode",
                 "distinct_users")
INT_SETTINGS = {"access_token_length": (8, 8192), "expires_in": (0, 10 ** 8),
                "code_lifetime": (0, 10 ** 6), "refresh_token_lifetime": (0, MAX_AGE)}
FAULT_FIELDS = ("status", "delay_ms", "body", "content_type", "retry_after",
                "close", "times", "grant_type", "process", "reason")
RATE_LIMIT_FIELDS = ("calls", "window", "retry_after", "reason")
MAX_RATE_LIMIT_CALLS = 100000     # timestamps the rolling window may hold
DEFAULT_RATE_LIMIT_WINDOW = 30    # Spotify: "a rolling 30 second window"
MAX_REASON_LENGTH = 64
# Web API 429 messages: a short-term limit, and the quota (July 2026 changelog).
SHORT_TERM_LIMIT_MESSAGE = "API rate limit exceeded"
QUOTA_MESSAGE = "Too many requests"
USER_FIELDS = ("account_id", "id", "display_name", "email", "country", "product")
MAX_ID_LENGTH = 256
MAX_ALLOWED_USERS = 100   # Spotify admits 5, but a test may name a user by id and account_id
MAX_COUNTDOWN = 10 ** 6   # "the next N" settings
# What a development-mode app no longer gets (February 2026 migration guide).
DEVELOPMENT_MODE_HIDDEN = ("country", "email", "explicit_content", "followers", "product")
NOT_REGISTERED = ("Check settings on developer.spotify.com/dashboard, "
                  "the user may not be registered.")


# ---------------------------------------------------------------------------
# small helpers


class ConfigError(ValueError):
    """A control-API request that the fake refuses (answered 400)."""


def random_token(length, prefix=""):
    """A random URL-safe string of exactly `length` characters.

    Spotify's tokens start with "BQ" (access) or "AQ" (codes, refresh
    tokens); the prefix only makes logs of the fake look familiar.
    """
    text = prefix
    while len(text) < length:
        text += secrets.token_urlsafe(length)
    return text[:length]


def s256(verifier):
    """The PKCE S256 code challenge of a verifier (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_params(text):
    """Parse a query string or form body.

    Returns (first value of each name, sorted duplicated names). OAuth
    forbids repeating a parameter (RFC 6749 3.1), so callers reject
    duplicates; the dict still holds the first value for the request log.
    Raises ValueError when there are more than MAX_FIELDS parameters.
    """
    values, dups = {}, set()
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True,
                                              max_num_fields=MAX_FIELDS):
        if name in values:
            dups.add(name)
        else:
            values[name] = value
    return values, sorted(dups)


def canonical_header(name):
    """'content-TYPE' -> 'Content-Type', so tests can look headers up reliably."""
    return "-".join(part.capitalize() for part in name.split("-"))


def sanitize_for_log(text, limit=200):
    """Printable ASCII only, bounded, so a hostile path cannot forge log lines."""
    text = text[:limit]
    return "".join(c if " " < c < "\x7f" else "?" for c in text)


def bounded_put(mapping, key, value, limit=MAX_ITEMS):
    """Insert into an insertion-ordered dict, dropping the oldest past `limit`."""
    mapping[key] = value
    while len(mapping) > limit:
        del mapping[next(iter(mapping))]


def parse_basic(header):
    """Decode 'Basic base64(id:secret)' -> (id, secret), or None if malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def same_secret(given, expected):
    """Constant-time comparison (a habit worth keeping even in a fake)."""
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def add_query(uri, params):
    """Append params to a redirect URI that may already have a query."""
    if "?" not in uri:
        sep = "?"
    elif uri.endswith(("?", "&")):
        sep = ""
    else:
        sep = "&"
    return uri + sep + urllib.parse.urlencode(params)


# ---------------------------------------------------------------------------
# replies


class Reply:
    """A complete HTTP answer: status, extra headers, body bytes."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, body=b"", headers=()):
        self.status = int(status)
        self.body = body
        self.headers = list(headers)


CLOSE = object()  # sentinel: close the connection without answering


def json_reply(status, obj, headers=()):
    body = json.dumps(obj).encode("utf-8")
    return Reply(status, body, [("Content-Type", "application/json")] + list(headers))


def html_reply(status, text, headers=()):
    """Spotify shows errors of /authorize as a page, not a redirect."""
    page = "<!DOCTYPE html>\n<html><head><title>Error</title></head><body><p>%s</p></body></html>\n"
    body = (page % html.escape(text)).encode("utf-8")
    return Reply(status, body, [("Content-Type", "text/html; charset=utf-8")] + list(headers))


NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


def oauth_error(status, error, description, headers=()):
    """Accounts-service error body: {"error": CODE, "error_description": TEXT}."""
    return json_reply(status, {"error": error, "error_description": description},
                      NO_STORE + list(headers))


def invalid_client(header_sent, description="Invalid client"):
    """401 + WWW-Authenticate if the client tried a header (RFC 6749 5.2), else 400."""
    if header_sent:
        return oauth_error(401, "invalid_client", description,
                           [("WWW-Authenticate", 'Basic realm="fake-spotify"')])
    return oauth_error(400, "invalid_client", description)


def invalid_grant(description):
    return oauth_error(400, "invalid_grant", description)


def api_error(status, message, headers=()):
    """Web API error body: {"error": {"status": N, "message": TEXT}}."""
    return json_reply(status, {"error": {"status": status, "message": message}}, headers)


def too_many_requests(reason=None, retry_after=None, status=429):
    """A Web API error with a reason, or Spotify's short-term 429 without one.

    Compact JSON, so that the quota answer is byte for byte the July 2026
    changelog's {"error":{"status":429,"message":"Too many requests",
    "reason":"QUOTA_EXCEEDED"}}.
    """
    if reason is None:
        error = {"status": status, "message": SHORT_TERM_LIMIT_MESSAGE}
    else:
        message = QUOTA_MESSAGE if status == 429 else phrase(status)
        error = {"status": status, "message": message, "reason": reason}
    body = json.dumps({"error": error}, separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", "application/json")]
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    return Reply(status, body, headers)


def unauthorized(message):
    challenge = 'Bearer realm="spotify", error="invalid_token", error_description="%s"' % message
    return api_error(401, message, [("WWW-Authenticate", challenge)])


def phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# ---------------------------------------------------------------------------
# configuration (control API)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ConfigError("%s must be true or false" % name)
    return value


def check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError("%s must be an integer from %d to %d" % (name, low, high))
    return value


def check_str(name, value, allow_none=False, max_len=MAX_BODY):
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ConfigError("%s must be a string" % name)
    return value


def validate_fault(endpoint, fault):
    """Check one fault object; returns a clean copy, or None (fault off)."""
    if fault is None or fault == {}:
        return None
    if not isinstance(fault, dict):
        raise ConfigError("faults.%s must be an object or null" % endpoint)
    unknown = set(fault) - set(FAULT_FIELDS)
    if unknown:
        raise ConfigError("faults.%s: unknown field(s) %s" % (endpoint, ", ".join(sorted(unknown))))
    if endpoint != "token" and fault.get("grant_type") is not None:
        raise ConfigError("faults.%s: grant_type applies to the token endpoint only" % endpoint)
    name = "faults.%s." % endpoint
    clean = {}
    for key, value in fault.items():
        if value is None:
            continue
        if key == "status":
            clean[key] = check_int(name + key, value, 100, 599)
        elif key == "delay_ms":
            clean[key] = check_int(name + key, value, 0, 60000)
        elif key in ("retry_after",):
            clean[key] = check_int(name + key, value, 0, 86400)
        elif key == "times":
            clean[key] = check_int(name + key, value, 1, 10 ** 6)
        elif key in ("close", "process"):
            clean[key] = check_bool(name + key, value)
        elif key == "reason":
            clean[key] = check_reason(name + key, value)
        else:  # body, content_type, grant_type
            clean[key] = check_str(name + key, value)
    return clean


def default_account_id(user_id):
    """The account_id of a user configured without one: "acct-" + 16 hex of sha256(id).

    Deterministic, so that a test which only switches user.id gets another
    Spotify account, and can compute that account's account_id itself.
    """
    return "acct-" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


def check_user(user):
    """Check a `user` object; returns the fields it gives (id is required)."""
    if not isinstance(user, dict):
        raise ConfigError("user must be an object")
    unknown = set(user) - set(USER_FIELDS)
    if unknown:
        raise ConfigError("user: unknown field(s) %s" % ", ".join(sorted(unknown)))
    for key in ("id", "account_id"):
        value = user.get(key)
        if key in user and (not isinstance(value, str) or not value
                            or len(value) > MAX_ID_LENGTH):
            raise ConfigError("user.%s must be a non-empty string" % key)
    if "id" not in user:
        raise ConfigError("user.id must be a non-empty string")
    clean = {"id": user["id"]}
    if "account_id" in user:
        clean["account_id"] = user["account_id"]
    for key in ("display_name", "email"):
        if key in user:
            clean[key] = check_str("user." + key, user[key], allow_none=True, max_len=1024)
    if "country" in user:
        clean["country"] = check_str("user.country", user["country"], max_len=8)
    if "product" in user:
        clean["product"] = check_str("user.product", user["product"], max_len=32)
    return clean


def new_account(user_id):
    """A fresh account's record: every field but id derived from the id."""
    return {
        "account_id": default_account_id(user_id),
        "id": user_id,
        "display_name": user_id,
        "email": user_id + "@example.com",
        "country": "SE",
        "product": "premium",
    }


def check_reason(name, value):
    if not isinstance(value, str) or not value or len(value) > MAX_REASON_LENGTH:
        raise ConfigError("%s must be a short string such as QUOTA_EXCEEDED" % name)
    return value


def check_rate_limit(value):
    """null, or {"calls": N, "window": 30, "retry_after": S | null, "reason": R | null}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("rate_limit must be an object or null")
    unknown = set(value) - set(RATE_LIMIT_FIELDS)
    if unknown:
        raise ConfigError("rate_limit: unknown field(s) %s" % ", ".join(sorted(unknown)))
    if "calls" not in value:
        raise ConfigError("rate_limit.calls is required")
    retry_after, reason = value.get("retry_after"), value.get("reason")
    return {
        "calls": check_int("rate_limit.calls", value["calls"], 1, MAX_RATE_LIMIT_CALLS),
        "window": check_int("rate_limit.window",
                            value.get("window", DEFAULT_RATE_LIMIT_WINDOW), 1, 86400),
        "retry_after": None if retry_after is None
        else check_int("rate_limit.retry_after", retry_after, 0, 86400),
        "reason": None if reason is None else check_reason("rate_limit.reason", reason),
    }


def check_countdown(name, value):
    """false | true (always) | N (the next N times): 0 is the same as false."""
    if isinstance(value, bool):
        return value
    return check_int(name, value, 0, MAX_COUNTDOWN) or False


def check_allowed_users(value):
    """null (everyone) or a list of ids / account_ids."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ALLOWED_USERS:
        raise ConfigError("allowed_users must be null or a list of at most %d ids"
                          % MAX_ALLOWED_USERS)
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_ID_LENGTH:
            raise ConfigError("allowed_users must hold non-empty strings")
    return list(value)


def check_drop_scopes(value):
    """A list of documented scope names (at most all of them)."""
    if not isinstance(value, list) or len(value) > len(SPOTIFY_SCOPES):
        raise ConfigError("drop_scopes must be a list of scope names")
    for item in value:
        if item not in SPOTIFY_SCOPES:
            raise ConfigError("drop_scopes: %r is not a Spotify scope" % (item,))
    return list(value)


def merge_config(current, patch):
    """Return a new config: `current` with the settings in `patch` changed.

    `faults` merges per endpoint (an endpoint not named keeps its fault).
    Unknown names are refused so that a typo in a test fails loudly.
    `user` is not a plain setting (it changes the account registry): the
    caller (FakeState.configure) handles it.
    """
    if not isinstance(patch, dict):
        raise ConfigError("config must be a JSON object")
    new = copy.deepcopy(current)
    for key, value in patch.items():
        if key in BOOL_SETTINGS:
            new[key] = check_bool(key, value)
        elif key in INT_SETTINGS:
            new[key] = check_int(key, value, *INT_SETTINGS[key])
        elif key == "invalid_grant_on_refresh":
            new[key] = check_countdown(key, value)
        elif key == "allowed_users":
            new[key] = check_allowed_users(value)
        elif key == "rate_limit":
            new[key] = check_rate_limit(value)
        elif key == "drop_scopes":
            new[key] = check_drop_scopes(value)
        elif key == "faults":
            if not isinstance(value, dict):
                raise ConfigError("faults must be an object")
            for endpoint, fault in value.items():
                if endpoint not in ENDPOINTS:
                    raise ConfigError("faults: unknown endpoint %r (use %s)"
                                      % (endpoint, ", ".join(ENDPOINTS)))
                new["faults"][endpoint] = validate_fault(endpoint, fault)
        else:
            raise ConfigError("unknown setting %r" % key)
    return new


# ---------------------------------------------------------------------------
# state


class Request:
    """What the handler parsed from one HTTP request."""

    def __init__(self, method, path, query, query_dups, headers, form, form_dups, is_form):
        self.method = method
        self.path = path
        self.query = query
        self.query_dups = query_dups
        self.headers = headers
        self.form = form
        self.form_dups = form_dups
        self.is_form = is_form


class FakeState:
    """Everything the fake remembers. Callers hold `lock` around every use.

    One lock for all state keeps the rules simple and makes each token
    request atomic: of 20 concurrent exchanges of one code exactly one wins.
    """

    def __init__(self, client_id, client_secret, redirect_uris, user):
        self.lock = threading.Lock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.initial_user = check_user(user)
        self.clock = time.monotonic
        self.reset()

    def reset(self):
        """Back to the start: default config, no accounts but the first, no codes, tokens or log."""
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.accounts = {}
        self.current_account_id = None
        self.current_account_id = self.put_account(self.initial_user)["account_id"]
        self.sync_current_user()
        self.codes = {}
        self.access_tokens = {}
        self.refresh_tokens = {}
        self.log = []
        self.stats = {"authorize": 0, "token": 0, "token_authorization_code": 0,
                      "token_refresh_token": 0, "me": 0, "rate_limited": 0}
        self.window_calls = collections.deque()
        self.grant_counter = 0
        self.distinct_counter = 0

    def configure(self, patch):
        """Merge settings; `user` also creates or updates an account and makes
        it the one the next /authorize approves. Nothing changes on an error."""
        if not isinstance(patch, dict):
            raise ConfigError("config must be a JSON object")
        settings = dict(patch)
        user = check_user(settings.pop("user")) if "user" in settings else None
        self.config = merge_config(self.config, settings)
        if "rate_limit" in settings:
            self.window_calls.clear()  # a new limit counts from now
        if user is not None:
            self.current_account_id = self.put_account(user)["account_id"]
        self.sync_current_user()

    # -- accounts

    def put_account(self, user):
        """Create or update the account user["account_id"] (default: derived from id).

        An existing account keeps the fields `user` does not give, so a new
        id for an existing account_id is a rename: the tokens issued before
        it see the new id (Spotify's "id may change, account_id stays").
        Ids are not unique across accounts: Spotify's may change, so a test
        may give a second account an id the first one had.
        """
        account_id = user.get("account_id") or default_account_id(user["id"])
        record = dict(self.accounts.get(account_id) or new_account(user["id"]))
        record.update(user)
        record["account_id"] = account_id
        current = self.accounts.get(self.current_account_id)
        bounded_put(self.accounts, account_id, record, MAX_ACCOUNTS)
        if current is not None and current["account_id"] not in self.accounts:
            # the one who logs in next must not be the one dropped for room
            bounded_put(self.accounts, current["account_id"], current, MAX_ACCOUNTS)
        return dict(record)

    def sync_current_user(self):
        """config["user"] shows the current record of the account that logs in next."""
        self.config["user"] = dict(self.accounts[self.current_account_id])

    def account_of(self, record):
        """The account a code or token belongs to, as it is now (None if dropped)."""
        return self.accounts.get(record["account_id"])

    def snapshot_accounts(self):
        return [dict(account) for account in self.accounts.values()]

    # -- request log and stats

    def record(self, endpoint, req):
        """Log a request to a Spotify endpoint; the entry gets its status later."""
        grant_type = req.form.get("grant_type") if endpoint == "token" else None
        entry = {
            "endpoint": endpoint, "method": req.method, "path": req.path,
            "query": req.query, "form": req.form, "headers": req.headers,
            "status": None, "grant_type": grant_type, "fault": False,
            "rate_limited": False, "time": time.time(),
        }
        self.log.append(entry)
        if len(self.log) > MAX_LOG_ENTRIES:
            del self.log[0]
        if endpoint in self.stats:
            self.stats[endpoint] += 1
        if grant_type in ("authorization_code", "refresh_token"):
            self.stats["token_" + grant_type] += 1
        return entry

    # -- the app-wide rate limit

    def rate_limited(self):
        """None if the app may make this call now (it is counted), else the 429.

        Only admitted calls fill the window: a client that waits out
        Retry-After gets through, one that keeps calling stays out no
        longer than the window.
        """
        limit = self.config["rate_limit"]
        if limit is None:
            return None
        now = self.clock()
        while self.window_calls and self.window_calls[0] <= now - limit["window"]:
            self.window_calls.popleft()
        if len(self.window_calls) < limit["calls"]:
            self.window_calls.append(now)
            return None
        self.stats["rate_limited"] += 1
        retry_after = limit["retry_after"]
        if retry_after is None:  # when the oldest call leaves the window
            retry_after = max(1, math.ceil(self.window_calls[0] + limit["window"] - now))
        return too_many_requests(limit["reason"], retry_after)

    # -- faults

    def take_fault(self, endpoint, grant_type):
        """The fault that applies to this request (a copy), counting down `times`."""
        fault = self.config["faults"].get(endpoint)
        if not fault:
            return None
        if fault.get("grant_type") is not None and fault["grant_type"] != grant_type:
            return None
        taken = dict(fault)
        if "times" in fault:
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.config["faults"][endpoint] = None
        return taken

    def take_forced_invalid_grant(self):
        """Whether invalid_grant_on_refresh fails this refresh, counting down N."""
        setting = self.config["invalid_grant_on_refresh"]
        if setting is True or setting is False:
            return setting
        self.config["invalid_grant_on_refresh"] = setting - 1 or False
        return True

    # -- codes and tokens

    def approved_account_id(self):
        """Whom this /authorize approves: the configured user, or with
        distinct_users a new account of its own."""
        if not self.config["distinct_users"]:
            return self.current_account_id
        self.distinct_counter += 1
        user_id = "%s-%d" % (self.config["user"]["id"], self.distinct_counter)
        return self.put_account({"id": user_id})["account_id"]

    def new_code(self, redirect_uri, challenge, scope):
        self.grant_counter += 1
        code = random_token(CODE_LENGTH, "AQ")
        bounded_put(self.codes, code, {
            "client_id": self.client_id, "redirect_uri": redirect_uri,
            "challenge": challenge, "scope": scope,
            "account_id": self.approved_account_id(), "grant": self.grant_counter,
            "expires_at": self.clock() + self.config["code_lifetime"], "used": False,
        })
        return code

    def new_access_token(self, grant):
        token = random_token(self.config["access_token_length"], "BQ")
        bounded_put(self.access_tokens, token, {
            "client_id": grant["client_id"], "account_id": grant["account_id"],
            "scope": grant["scope"], "grant": grant["grant"], "revoked": False,
            "expires_at": self.clock() + self.config["expires_in"],
        })
        return token

    def new_refresh_token(self, grant, grant_started_at):
        """A refresh token of `grant`, which the user authorized at grant_started_at.

        Rotation passes the old token's start on: a refresh does not extend
        the six months, only a new authorization does.
        """
        token = random_token(REFRESH_TOKEN_LENGTH, "AQ")
        bounded_put(self.refresh_tokens, token, {
            "client_id": grant["client_id"], "account_id": grant["account_id"],
            "scope": grant["scope"], "grant": grant["grant"], "revoked": False,
            "grant_started_at": grant_started_at,
        })
        return token

    def grant_expires_at(self, refresh_record):
        # the current lifetime, so that a test may shorten it for grants already made
        return refresh_record["grant_started_at"] + self.config["refresh_token_lifetime"]

    def age_grants(self, seconds):
        """Move every grant's start `seconds` into the past; returns how many grants."""
        grants = set()
        for record in self.refresh_tokens.values():
            record["grant_started_at"] -= seconds
            grants.add(record["grant"])
        return len(grants)

    def revoke_grant(self, grant_id):
        """Revoke every token descended from one authorization code."""
        for table in (self.access_tokens, self.refresh_tokens):
            for record in table.values():
                if record["grant"] == grant_id:
                    record["revoked"] = True

    def revoke_refresh_tokens(self):
        for record in self.refresh_tokens.values():
            record["revoked"] = True
        return len(self.refresh_tokens)

    def expire_access_tokens(self):
        now = self.clock()
        for record in self.access_tokens.values():
            record["expires_at"] = min(record["expires_at"], now)
        return len(self.access_tokens)

    def snapshot_tokens(self):
        """For /_fake/tokens: what was issued, to which account, and whether it still works.

        user_id is the account's id now (what /v1/me would show), not at issue.
        """
        now = self.clock()
        return {
            "codes": [dict(self.owner(r), code=code, redirect_uri=r["redirect_uri"],
                           scope=r["scope"], used=r["used"], expired=now >= r["expires_at"])
                      for code, r in self.codes.items()],
            "access_tokens": [dict(self.owner(r), access_token=tok, scope=r["scope"],
                                   revoked=r["revoked"], expired=now >= r["expires_at"],
                                   expires_in=max(0, int(r["expires_at"] - now)))
                              for tok, r in self.access_tokens.items()],
            "refresh_tokens": [dict(self.owner(r), refresh_token=tok, scope=r["scope"],
                                    revoked=r["revoked"],
                                    expired=now >= self.grant_expires_at(r),
                                    grant_expires_in=max(0, int(self.grant_expires_at(r) - now)))
                               for tok, r in self.refresh_tokens.items()],
        }

    def owner(self, record):
        account = self.account_of(record)
        return {"user_id": account["id"] if account else None,
                "account_id": record["account_id"]}


# ---------------------------------------------------------------------------
# Accounts service: /authorize


def authorize(state, req):
    """Validate like Spotify; auto-approve (or deny) for the configured user.

    Errors are a 400 page without redirect, as Spotify shows for a bad
    client, redirect URI or scope: nothing reaches the app's callback.
    """
    q = req.query
    if req.query_dups:
        return html_reply(400, "Duplicate parameter: %s" % ", ".join(req.query_dups))
    if q.get("client_id") != state.client_id:
        return html_reply(400, "INVALID_CLIENT: Invalid client")
    redirect_uri = q.get("redirect_uri")
    if redirect_uri not in state.redirect_uris:
        return html_reply(400, "INVALID_CLIENT: Invalid redirect URI")
    if q.get("response_type") != "code":
        return html_reply(400, "unsupported_response_type: response_type must be code")
    challenge = q.get("code_challenge")
    if challenge is None:
        return html_reply(400, "invalid_request: code_challenge required (PKCE)")
    if q.get("code_challenge_method") != "S256":
        return html_reply(400, "invalid_request: code_challenge_method must be S256")
    if not CHALLENGE_RE.fullmatch(challenge):
        return html_reply(400, "invalid_request: code_challenge must be 43 characters of base64url")
    scopes = []
    for scope in q.get("scope", "").split():
        if scope not in SPOTIFY_SCOPES:
            return html_reply(400, "Illegal scope")
        if scope not in scopes:
            scopes.append(scope)
    granted = [scope for scope in scopes if scope not in state.config["drop_scopes"]]
    params = []
    if state.config["deny"]:
        params.append(("error", "access_denied"))
    else:
        params.append(("code", state.new_code(redirect_uri, challenge, " ".join(granted))))
    if "state" in q:
        params.append(("state", q["state"]))
    location = add_query(redirect_uri, params)
    return html_reply(302, "Redirecting", [("Location", location)] + NO_STORE)


# ---------------------------------------------------------------------------
# Accounts service: /api/token


def authenticate_client(state, req):
    """Check the client credentials: returns (client_id, None) or (None, error reply).

    Spotify takes them as HTTP Basic or as client_id/client_secret form
    fields. If both are sent they must agree. With allow_public_clients a
    client_id alone is accepted, as Spotify does for PKCE public clients.
    """
    header = req.headers.get("Authorization")
    form_id = req.form.get("client_id")
    form_secret = req.form.get("client_secret")
    if header is not None:
        creds = parse_basic(header)
        if creds is None:
            return None, invalid_client(True)
        client_id, secret = creds
        if (form_id is not None and form_id != client_id) or \
           (form_secret is not None and form_secret != secret):
            return None, invalid_client(True)
        if client_id != state.client_id:
            return None, invalid_client(True)
        if not same_secret(secret, state.client_secret):
            return None, invalid_client(True, "Invalid client secret")
        return client_id, None
    if form_id != state.client_id:
        return None, invalid_client(False)
    if form_secret is None:
        if state.config["allow_public_clients"]:
            return form_id, None
        return None, invalid_client(False)
    if not same_secret(form_secret, state.client_secret):
        return None, invalid_client(False, "Invalid client secret")
    return form_id, None


def token(state, req):
    """POST /api/token: content type, client authentication, then the grant."""
    if not req.is_form:
        return oauth_error(400, "invalid_request",
                           "Content-Type must be application/x-www-form-urlencoded")
    if req.form_dups:
        return oauth_error(400, "invalid_request",
                           "Duplicate parameter: %s" % ", ".join(req.form_dups))
    client_id, error = authenticate_client(state, req)
    if error:
        return error
    grant_type = req.form.get("grant_type")
    if grant_type == "authorization_code":
        return exchange_code(state, client_id, req.form)
    if grant_type == "refresh_token":
        return refresh(state, client_id, req.form)
    if grant_type is None:
        return oauth_error(400, "unsupported_grant_type", "grant_type parameter is missing")
    return oauth_error(400, "unsupported_grant_type",
                       "grant_type must be authorization_code or refresh_token (in this fake)")


def exchange_code(state, client_id, form):
    """grant_type=authorization_code, with Spotify's error descriptions."""
    record = state.codes.get(form.get("code") or "")
    if record is None or record["client_id"] != client_id:
        return invalid_grant("Invalid authorization code")
    if record["used"]:
        if state.config["revoke_on_code_reuse"]:
            state.revoke_grant(record["grant"])
        return invalid_grant("Invalid authorization code")
    if state.clock() >= record["expires_at"]:
        return invalid_grant("Authorization code expired")
    if form.get("redirect_uri") != record["redirect_uri"]:
        return invalid_grant("Invalid redirect URI")
    verifier = form.get("code_verifier")
    if verifier is None or not VERIFIER_RE.fullmatch(verifier) \
            or not secrets.compare_digest(s256(verifier), record["challenge"]):
        return invalid_grant("code_verifier was incorrect")
    record["used"] = True
    return json_reply(200, {
        "access_token": state.new_access_token(record),
        "token_type": "Bearer",
        "expires_in": state.config["expires_in"],
        "refresh_token": state.new_refresh_token(record, grant_started_at=state.clock()),
        "scope": record["scope"],
    }, NO_STORE)


def refresh(state, client_id, form):
    """grant_type=refresh_token; a new refresh token only when rotating."""
    refresh_token = form.get("refresh_token")
    if not refresh_token:
        return oauth_error(400, "invalid_request", "refresh_token must be supplied")
    if state.take_forced_invalid_grant():
        return invalid_grant("Refresh token revoked")
    record = state.refresh_tokens.get(refresh_token)
    if record is None or record["client_id"] != client_id:
        return invalid_grant("Invalid refresh token")
    if record["revoked"]:
        return invalid_grant("Refresh token revoked")
    if state.clock() >= state.grant_expires_at(record):
        return invalid_grant("Refresh token expired")
    body = {
        "access_token": state.new_access_token(record),
        "token_type": "Bearer",
        "expires_in": state.config["expires_in"],
        "scope": record["scope"],
    }
    if state.config["rotate_refresh_tokens"]:
        record["revoked"] = True
        body["refresh_token"] = state.new_refresh_token(record, record["grant_started_at"])
    return json_reply(200, body, NO_STORE)


# ---------------------------------------------------------------------------
# Web API: /v1/me


def me(state, req):
    """GET /v1/me: the profile of the token's user, fields gated by scope.

    As Spotify: email needs user-read-email; country, product and
    explicit_content need user-read-private.
    """
    header = req.headers.get("Authorization")
    if header is None:
        return unauthorized("No token provided")
    scheme, _, access_token = header.partition(" ")
    if scheme.lower() != "bearer" or not access_token:
        return api_error(400, "Only valid bearer authentication supported")
    record = state.access_tokens.get(access_token)
    account = state.account_of(record) if record else None
    if record is None or record["revoked"] or account is None:
        return unauthorized("Invalid access token")
    if state.clock() >= record["expires_at"]:
        return unauthorized("The access token expired")
    if not admitted(state.config, account):
        return api_error(403, NOT_REGISTERED)
    return json_reply(200, profile_body(account, record["scope"].split(), state.config))


def admitted(config, account):
    """A development-mode app serves only the users its owner added (by id or account_id).

    Outside development mode allowed_users does not count: an app with
    extended quota serves everyone, as at Spotify.
    """
    allowed = config["allowed_users"]
    if not config["development_mode"] or allowed is None:
        return True
    return account["id"] in allowed or account["account_id"] in allowed


def profile_body(user, scopes, config):
    """The User object as Spotify shows it to this token, in Spotify's key order."""
    quoted = urllib.parse.quote(user["id"], safe="")
    private = "user-read-private" in scopes
    body = {}
    if not config["omit_account_id"]:
        body["account_id"] = user["account_id"]
    if private:
        body["country"] = user["country"]
    body["display_name"] = user["display_name"]
    if "user-read-email" in scopes:
        body["email"] = user["email"]
    if private:
        body["explicit_content"] = {"filter_enabled": False, "filter_locked": False}
    body["external_urls"] = {"spotify": "https://open.spotify.com/user/" + quoted}
    body["followers"] = {"href": None, "total": 0}
    body["href"] = "https://api.spotify.com/v1/users/" + quoted
    body["id"] = user["id"]
    body["images"] = []
    if private:
        body["product"] = user["product"]
    body["type"] = "user"
    body["uri"] = "spotify:user:" + user["id"]
    if config["development_mode"]:
        for field in DEVELOPMENT_MODE_HIDDEN:
            body.pop(field, None)
    return body


ENDPOINT_LOGIC = {"authorize": authorize, "token": token, "me": me}
ENDPOINT_PATHS = {"/authorize": ("authorize", "GET"), "/api/token": ("token", "POST"),
                  "/v1/me": ("me", "GET")}


# ---------------------------------------------------------------------------
# faults


def fault_replaces_answer(fault):
    """A fault with only delay_ms slows the normal answer; others replace it."""
    return bool(fault.get("close")) or "status" in fault or "body" in fault or "reason" in fault


def fault_reply(endpoint, fault):
    """The answer a fault sends instead of the normal one (or CLOSE)."""
    if fault.get("close"):
        return CLOSE
    # a reason is the Web API's way to say which limit: 429 unless told otherwise
    status = fault.get("status", 429 if "reason" in fault else 200)
    if "body" in fault:
        default_type = "text/html; charset=utf-8" if endpoint == "authorize" else "application/json"
        reply = Reply(status, fault["body"].encode("utf-8"), [("Content-Type", default_type)])
    elif "reason" in fault:
        reply = too_many_requests(fault["reason"], status=status)
    elif endpoint == "authorize":
        reply = html_reply(status, "%d %s" % (status, phrase(status)))
    elif status == 429:
        reply = too_many_requests()
    elif endpoint == "token":
        error = {400: "invalid_request", 401: "invalid_client", 403: "access_denied",
                 503: "server_error"}.get(status, "server_error")
        reply = oauth_error(status, error, phrase(status))
    else:
        reply = api_error(status, phrase(status))
    if "content_type" in fault:
        reply.headers = [h for h in reply.headers if h[0] != "Content-Type"]
        reply.headers.append(("Content-Type", fault["content_type"]))
    if "retry_after" in fault:
        reply.headers.append(("Retry-After", str(fault["retry_after"])))
    return reply


# ---------------------------------------------------------------------------
# control API


def control(state, method, path, query, body):
    """/_fake/...: JSON in, JSON out. Returns a Reply."""
    routes = {
        "/_fake/health": ("GET", lambda: {"ok": True}),
        "/_fake/config": (("GET", "POST"), lambda: control_config(state, method, body)),
        "/_fake/reset": ("POST", lambda: state.reset() or {"ok": True}),
        "/_fake/revoke_refresh_tokens":
            ("POST", lambda: {"ok": True, "revoked": state.revoke_refresh_tokens()}),
        "/_fake/expire_access_tokens":
            ("POST", lambda: {"ok": True, "expired": state.expire_access_tokens()}),
        "/_fake/requests": ("GET", lambda: control_requests(state, query)),
        "/_fake/stats": ("GET", lambda: dict(state.stats)),
        "/_fake/tokens": ("GET", state.snapshot_tokens),
        "/_fake/accounts": (("GET", "POST"), lambda: control_accounts(state, method, body)),
        "/_fake/age_grants": ("POST", lambda: control_age_grants(state, body)),
    }
    if path not in routes:
        return json_reply(404, {"error": "no such control endpoint: %s" % path})
    allowed, action = routes[path]
    allowed = (allowed,) if isinstance(allowed, str) else allowed
    if method not in allowed:
        return json_reply(405, {"error": "use %s" % " or ".join(allowed)},
                          [("Allow", ", ".join(allowed))])
    try:
        return json_reply(200, action())
    except ConfigError as e:
        return json_reply(400, {"error": str(e)})


def json_body(body):
    try:
        return json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("body must be JSON")


def control_config(state, method, body):
    if method == "POST":
        state.configure(json_body(body))
    return copy.deepcopy(state.config)


def control_accounts(state, method, body):
    """GET: every account. POST a user object: create or update (rename) that
    account without changing who the next /authorize approves."""
    if method == "POST":
        account = state.put_account(check_user(json_body(body)))
        state.sync_current_user()
        return account
    return state.snapshot_accounts()


def control_age_grants(state, body):
    """{"seconds": N}: as if every grant had been authorized N seconds earlier."""
    request = json_body(body)
    if not isinstance(request, dict) or set(request) != {"seconds"}:
        raise ConfigError('body must be {"seconds": N}')
    seconds = check_int("seconds", request["seconds"], 0, MAX_AGE)
    return {"ok": True, "aged": state.age_grants(seconds)}


def control_requests(state, query):
    endpoint = query.get("endpoint")
    if endpoint is not None and endpoint not in ENDPOINTS + ("other",):
        raise ConfigError("endpoint must be one of %s, other" % ", ".join(ENDPOINTS))
    return [entry for entry in state.log if endpoint is None or entry["endpoint"] == endpoint]


# ---------------------------------------------------------------------------
# HTTP


def counts_against_rate_limit(path):
    """Spotify limits the app's API calls: /api/token and /v1/*, not the
    /authorize page a browser shows."""
    return path == "/api/token" or path.startswith("/v1/")


class Handler(http.server.BaseHTTPRequestHandler):
    """Parses requests, applies faults and limits, and writes replies.

    The Spotify logic above never touches sockets; this class never decides
    what Spotify would answer.
    """

    protocol_version = "HTTP/1.1"   # keep-alive, like Spotify
    server_version = "fake-spotify"
    sys_version = ""
    timeout = HANDLER_TIMEOUT

    def handle(self):
        try:
            super().handle()
        except OSError:  # ssl.SSLError included: the peer went away mid-request
            self.close_connection = True

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    # -- logging: method, path (no query: it holds codes and state), status

    def parse_request(self):
        self.path = None  # a bad request line must not log the previous path
        return super().parse_request()

    def log_request(self, code="-", size="-"):
        status = int(code) if isinstance(code, int) else code
        self.log_line(status)

    def log_error(self, format, *args):
        """Dropped: send_error also calls log_request, and args may hold the request line."""

    def path_of_request(self):
        try:
            return urllib.parse.urlsplit(self.path).path if self.path else "-"
        except ValueError:
            return "?"

    def log_line(self, status):
        path = self.path_of_request()
        line = "fake_spotify: %s %s %s\n" % (sanitize_for_log(self.command or "-"),
                                             sanitize_for_log(path), status)
        with self.server.log_lock:
            sys.stderr.write(line)
            sys.stderr.flush()

    # -- request handling

    def dispatch(self):
        state = self.server.state
        try:
            url = urllib.parse.urlsplit(self.path)
        except ValueError:
            self.send_reply(json_reply(400, {"error": "bad request target"}))
            return
        self.server.transport.saw_request(self.connection, url.path)
        body, early = self.read_body()
        if url.path.startswith("/_fake/"):
            self.answer_control(state, url, body, early)
            return
        req, bad = self.build_request(url, body)
        endpoint, method = ENDPOINT_PATHS.get(url.path, ("other", None))
        with state.lock:
            entry = state.record(endpoint, req)
        limited = None
        if not (early or bad) and counts_against_rate_limit(url.path):
            with state.lock:
                limited = state.rate_limited()
                entry["rate_limited"] = limited is not None
        if early or bad:
            reply = early or bad
        elif limited:
            reply = limited
        elif endpoint == "other":
            reply = api_error(404, "Service not found")
        elif self.command != method:
            reply = self.method_not_allowed(endpoint, method)
        else:
            reply = self.run_endpoint(state, endpoint, req, entry)
        with state.lock:
            entry["status"] = None if reply is CLOSE else reply.status
        self.send_reply(reply)

    def run_endpoint(self, state, endpoint, req, entry):
        """Faults first (delay, then maybe replace the answer), else the logic."""
        grant_type = req.form.get("grant_type") if endpoint == "token" else None
        with state.lock:
            fault = state.take_fault(endpoint, grant_type)
            if fault:
                entry["fault"] = True
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000.0)  # outside the lock
        if fault and fault_replaces_answer(fault):
            if fault.get("process"):  # do the work, then lose the answer
                with state.lock:
                    ENDPOINT_LOGIC[endpoint](state, req)
            return fault_reply(endpoint, fault)
        with state.lock:
            return ENDPOINT_LOGIC[endpoint](state, req)

    def answer_control(self, state, url, body, early):
        if early:
            self.send_reply(early)
            return
        if url.path in TRANSPORT_ROUTES:
            self.send_reply(self.answer_transport(url.path, body))
            return
        try:
            query, _ = parse_params(url.query)
        except ValueError:
            self.send_reply(json_reply(400, {"error": "too many parameters"}))
            return
        with state.lock:
            reply = control(state, self.command, url.path, query, body)
        transport = self.server.transport
        if reply.status == 200 and url.path == "/_fake/stats":
            reply = json_reply(200, dict(json.loads(reply.body), **transport.counts()))
        elif reply.status == 200 and url.path == "/_fake/reset":
            transport.reset()
        self.send_reply(reply)

    def answer_transport(self, path, body):
        """/_fake/connections and /_fake/drop_connections (see Transport)."""
        transport = self.server.transport
        allowed = TRANSPORT_ROUTES[path]
        if self.command not in allowed:
            return json_reply(405, {"error": "use %s" % " or ".join(allowed)},
                              [("Allow", ", ".join(allowed))])
        if path == "/_fake/drop_connections":
            return json_reply(200, {"ok": True, "dropped": transport.drop(self.connection)})
        if self.command == "POST":
            try:
                patch = json.loads(body.decode("utf-8") or "{}")
                transport.configure(patch)
            except (UnicodeDecodeError, ValueError) as e:
                return json_reply(400, {"error": str(e) if isinstance(e, ConfigError)
                                        else "body must be JSON"})
        return json_reply(200, transport.snapshot())

    @staticmethod
    def method_not_allowed(endpoint, method):
        headers = [("Allow", method)]
        if endpoint == "me":
            return api_error(405, "Method not allowed", headers)
        if endpoint == "token":
            return oauth_error(405, "invalid_request", "Method not allowed", headers)
        return html_reply(405, "Method not allowed", headers)

    def read_body(self):
        """Read the request body within MAX_BODY: returns (bytes, error reply or None)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return b"", json_reply(411, {"error": "Content-Length required"})
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b"", None
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return b"", json_reply(400, {"error": "bad Content-Length"})
        if length > MAX_BODY:
            self.drain(length)
            self.close_connection = True
            return b"", json_reply(413, {"error": "request body larger than %d bytes" % MAX_BODY})
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return body, json_reply(400, {"error": "truncated body"})
        return body, None

    def drain(self, length):
        """Read (a bounded part of) an oversized body so the 413 is not lost to a reset."""
        remaining = min(length, MAX_DRAIN)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def build_request(self, url, body):
        """Parse query, headers and form: returns (Request, error reply or None)."""
        headers = {}
        for name, value in self.headers.items():
            name = canonical_header(name)
            headers[name] = headers[name] + ", " + value if name in headers else value
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        bad = None
        try:
            query, query_dups = parse_params(url.query)
        except ValueError:
            query, query_dups = {}, []
            bad = json_reply(400, {"error": "too many query parameters"})
        form, form_dups = {}, []
        if body:
            try:
                form, form_dups = parse_params(body.decode("ascii"))
            except UnicodeDecodeError:
                if content_type == "application/x-www-form-urlencoded":
                    bad = oauth_error(400, "invalid_request", "form body must be ASCII")
            except ValueError:
                bad = oauth_error(400, "invalid_request", "too many form parameters")
        req = Request(self.command, url.path, query, query_dups, headers, form, form_dups,
                      content_type == "application/x-www-form-urlencoded")
        return req, bad

    def send_reply(self, reply):
        if reply is CLOSE:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.log_line("closed")
            return
        if not self.server.transport.keep_alive and self.path_of_request() in API_PATHS:
            self.close_connection = True
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)


TRANSPORT_ROUTES = {"/_fake/connections": ("GET", "POST"),
                    "/_fake/drop_connections": ("POST",)}
API_PATHS = ("/api/token", "/v1/me")  # what baa calls; browsers call /authorize
MAX_CONNECTION_RECORDS = 1000  # recent connections shown by /_fake/connections
TRANSPORT_COUNTERS = ("connections", "tls_handshakes", "tls_resumed", "tls_failed",
                      "api_connections")


class Transport:
    """The connections: TLS, counts, the open ones, keep-alive (see the docstring).

    Its own lock: never held together with the state's.
    """

    def __init__(self, tls_files=None):
        self.lock = threading.Lock()
        self.tls_files = tls_files  # (cert, key), or None for plain HTTP
        self.keep_alive = True
        self.resumption = True
        self.context = self.new_context() if tls_files else None
        self.open = {}  # socket -> its record
        self.reset()

    def new_context(self):
        """A server context; a new one also forgets every session issued before."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(*self.tls_files)
        ctx.set_alpn_protocols(["http/1.1"])
        if not self.resumption:
            ctx.num_tickets = 0
            ctx.options |= ssl.OP_NO_TICKET
        return ctx

    def reset(self):
        with self.lock:
            self.counters = dict.fromkeys(TRANSPORT_COUNTERS, 0)
            self.records = []
            self.next_id = 0
            self.keep_alive = True
            if not self.resumption:
                self.resumption = True
                self.context = self.new_context()

    def configure(self, patch):
        if not isinstance(patch, dict) or set(patch) - {"keep_alive", "resumption"}:
            raise ConfigError("connections: only keep_alive and resumption (booleans)")
        for key, value in patch.items():
            check_bool(key, value)
        with self.lock:
            self.keep_alive = patch.get("keep_alive", self.keep_alive)
            if patch.get("resumption", self.resumption) != self.resumption:
                self.resumption = patch["resumption"]
                if self.tls_files:
                    self.context = self.new_context()

    def counts(self):
        with self.lock:
            return dict(self.counters)

    def snapshot(self):
        with self.lock:
            return {"keep_alive": self.keep_alive, "resumption": self.resumption,
                    "tls": self.tls_files is not None, "open": len(self.open),
                    "counts": dict(self.counters),
                    "connections": [dict(r) for r in self.records]}

    # -- one connection's life (server thread of that connection)

    def accepted(self):
        with self.lock:
            self.next_id += 1
            self.counters["connections"] += 1
            record = {"id": self.next_id, "tls": False, "version": None, "resumed": False,
                      "requests": 0, "api": False, "open": True}
            self.records.append(record)
            if len(self.records) > MAX_CONNECTION_RECORDS:
                del self.records[0]
            return record

    def handshake(self, sock, record):
        """The server side of the TLS handshake: -> (TLS socket, None) or (None, why)."""
        with self.lock:
            context = self.context
        sock.settimeout(HANDLER_TIMEOUT)
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.counters["tls_failed"] += 1
                record["open"] = False
            return None, getattr(e, "reason", None) or type(e).__name__
        with self.lock:
            self.counters["tls_handshakes"] += 1
            record.update(tls=True, version=tls.version(), resumed=tls.session_reused)
            if tls.session_reused:
                self.counters["tls_resumed"] += 1
        return tls, None

    def opened(self, sock, record):
        with self.lock:
            self.open[sock] = record

    def saw_request(self, sock, path):
        with self.lock:
            record = self.open.get(sock)
            if record is None:
                return
            record["requests"] += 1
            if path in API_PATHS and not record["api"]:
                record["api"] = True
                self.counters["api_connections"] += 1

    def closed(self, sock, record):
        with self.lock:
            self.open.pop(sock, None)
            record["open"] = False

    def drop(self, current):
        """Shut down every open connection but `current`: -> how many."""
        with self.lock:
            victims = [sock for sock in self.open if sock is not current]
        for sock in victims:
            try:
                # socket.socket's own shutdown, not SSLSocket's: the thread
                # reading from it still holds the TLS state, and sees EOF.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        return len(victims)


class FakeSpotifyServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads, a backlog for bursts, and TLS.

    The TLS handshake runs in the connection's own thread (finish_request),
    so a slow or failing client never holds up accept().
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of 20+ connections

    def __init__(self, address, state, transport=None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.log_lock = threading.Lock()
        self.transport = transport or Transport()
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        record = self.transport.accepted()
        sock = request
        # Headers and body leave in two writes: without this, Nagle holds the
        # body until the client's delayed ACK, 40 ms on every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.transport.tls_files:
                sock, why = self.transport.handshake(request, record)
                if sock is None:
                    self.log_line("fake_spotify: TLS handshake failed: %s\n"
                                  % sanitize_for_log(str(why)))
                    return
            self.transport.opened(sock, record)
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            if sock is not None:
                self.transport.closed(sock, record)
            if sock is not None and sock is not request:
                self.shutdown_request(sock)  # the TLS socket took over the descriptor

    def log_line(self, line):
        with self.log_lock:
            sys.stderr.write(line)
            sys.stderr.flush()


# ---------------------------------------------------------------------------
# command line


def loopback_host(host):
    """Refuse anything but loopback: this fake must never face a network."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise SystemExit("fake_spotify: --host must be a loopback address, not %r" % host)


def write_port_file(path, port):
    """Atomically, so a harness polling the file never reads half a number."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Fake Spotify Accounts service and Web API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", action="append", required=True,
                        help="a registered redirect URI (repeatable)")
    parser.add_argument("--user-id", default="demo-user")
    parser.add_argument("--display-name", default="Demo User")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def main(argv=None):
    args = parse_args(argv)
    host = loopback_host(args.host)
    state = FakeState(args.client_id, args.client_secret, args.redirect_uri,
                      {"id": args.user_id, "display_name": args.display_name})
    tls_files = (args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        transport = Transport(tls_files)
    except (OSError, ssl.SSLError) as e:
        raise SystemExit("fake_spotify: cannot use --tls-cert/--tls-key: %s" % e)
    server = FakeSpotifyServer((host, args.port), state, transport)

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return: not from this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stderr.write("fake_spotify: listening on %s://%s:%d\n"
                     % ("https" if tls_files else "http",
                        host if ":" not in host else "[%s]" % host, port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    sys.stderr.write("fake_spotify: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
