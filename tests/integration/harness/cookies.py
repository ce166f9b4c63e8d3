"""baa's signed cookies, made and read from the documented format, and
sessions minted straight into the database."""

import base64
import hashlib
import hmac
import os
import time

from .env import SECRET_KEY


OAUTH_COOKIE = "__Host-baa_oauth"
SESSION_COOKIE = "__Host-baa_session"
# The names of the first cookie format: still read by baa, never written.
LEGACY_OAUTH_COOKIE = "baa_oauth"
LEGACY_SESSION_COOKIE = "baa_session"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf_sha256(ikm, info, length=32, salt=None):
    """RFC 5869 HKDF with SHA-256; no salt means HashLen zero bytes."""
    if salt is None:
        salt = b"\x00" * 32
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def s256(verifier):
    """PKCE S256 challenge of a verifier (RFC 7636 4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class CookieSigner:
    """Makes and reads baa's signed cookies, from the documented format
    (README, "Sessions and cookies"):

    __Host-baa_oauth:   v2.<kid>.<state>.<expires>.<b64url(next)>[.<b64url(asked)>].<mac>
      (asked: the scopes the login asked Spotify for, when they fit)
    __Host-baa_session: v2.<kid>.<b64url(session id, 32 bytes)>.<expires>.<mac>
    mac = b64url(HMAC-SHA256(K, b"<purpose>|" + everything before the last "."))
      purpose "baa_oauth" or "baa_session" (the cookies' first names)
    K = HKDF-SHA256(secret, info=b"baa <purpose> cookie v1", L=32)
    kid = b64url(HMAC-SHA256(K_session, b"baa cookie key id")[:6])
    The first format (read only, under the names baa_oauth and baa_session):
      v1.<state>.<expires>.<b64url(next)>.<mac>, v1.<user id>.<generation>.<expires>.<mac>
    The session's row is keyed by sha256(session id) (sessions.token_hash).
    """

    def __init__(self, secret_key=SECRET_KEY):
        if isinstance(secret_key, str):
            secret_key = secret_key.split()[0].encode("utf-8")
        self.oauth_key = hkdf_sha256(secret_key, b"baa oauth cookie v1")
        self.session_key = hkdf_sha256(secret_key, b"baa session cookie v1")
        self.pkce_key = hkdf_sha256(secret_key, b"baa pkce verifier v1")
        self.kid = b64url(hmac.new(self.session_key, b"baa cookie key id",
                                   hashlib.sha256).digest()[:6])

    @staticmethod
    def _mac(key, name, body):
        return b64url(hmac.new(key, name.encode("ascii") + b"|" + body.encode("ascii"),
                               hashlib.sha256).digest())

    def oauth_mac(self, body):
        return self._mac(self.oauth_key, "baa_oauth", body)

    def session_mac(self, body):
        return self._mac(self.session_key, "baa_session", body)

    def sign_oauth(self, state, expires, next_path="/", asked=None):
        """asked None: a cookie without the field (as every login signed
        before baa carried it)."""
        body = "v2.%s.%s.%d.%s" % (self.kid, state, int(expires),
                                   b64url(next_path.encode("utf-8")))
        if asked is not None:
            body += "." + b64url(asked.encode("utf-8"))
        return body + "." + self.oauth_mac(body)

    def sign_legacy_oauth(self, state, expires, next_path="/"):
        body = "v1.%s.%d.%s" % (state, int(expires), b64url(next_path.encode("utf-8")))
        return body + "." + self.oauth_mac(body)

    def pkce_verifier(self, state):
        return b64url(hmac.new(self.pkce_key, state.encode("ascii"), hashlib.sha256).digest())

    def sign_session(self, session_id, expires):
        """session_id: 32 bytes (or its b64url text)."""
        if isinstance(session_id, bytes):
            session_id = b64url(session_id)
        body = "v2.%s.%s.%d" % (self.kid, session_id, int(expires))
        return body + "." + self.session_mac(body)

    def sign_legacy_session(self, user_id, generation, expires):
        body = "v1.%d.%d.%d" % (int(user_id), int(generation), int(expires))
        return body + "." + self.session_mac(body)

    @staticmethod
    def parse_oauth(value):
        """-> dict(kid, state, expires, next, asked (None: absent), mac)
        (no verification)."""
        fields = value.split(".")
        if len(fields) == 6:
            fields.insert(5, None)
        version, kid, state, expires, nxt, asked, mac = fields
        if version != "v2":
            raise ValueError("not a v2 cookie: %r" % value)
        return {"kid": kid, "state": state, "expires": int(expires),
                "next": b64url_decode(nxt).decode("utf-8"),
                "asked": None if asked is None else b64url_decode(asked).decode("utf-8"),
                "mac": mac}

    @staticmethod
    def parse_session(value):
        """-> dict(kid, session_id (bytes), token_hash (hex), expires, mac)."""
        version, kid, sid, expires, mac = value.split(".")
        if version != "v2":
            raise ValueError("not a v2 cookie: %r" % value)
        raw = b64url_decode(sid)
        return {"kid": kid, "session_id": raw, "token_hash": hashlib.sha256(raw).hexdigest(),
                "expires": int(expires), "mac": mac}

    def oauth_is_authentic(self, value):
        body, _, mac = value.rpartition(".")
        return hmac.compare_digest(mac, self.oauth_mac(body))

    def session_is_authentic(self, value):
        body, _, mac = value.rpartition(".")
        return hmac.compare_digest(mac, self.session_mac(body))


def mint_session(pg, db, user_id, secret_key=SECRET_KEY, ttl=3600, device="test",
                 signer=None):
    """A session row for user_id written straight into the database, and its
    cookie value, as a login would have made them (for tests and benchmarks
    that need many sessions without as many logins)."""
    raw = os.urandom(32)
    pg.psql("INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device)"
            " VALUES ('\\x%s', %d, now() + interval '%d seconds',"
            " now() + interval '%d seconds', '%s')"
            % (hashlib.sha256(raw).hexdigest(), int(user_id), ttl, ttl, device), db=db)
    return (signer or CookieSigner(secret_key)).sign_session(raw, int(time.time()) + ttl)
