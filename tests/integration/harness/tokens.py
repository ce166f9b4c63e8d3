"""The tokens baa stores encrypted, opened from the documented format."""

import hashlib
import hmac

from .cookies import b64url, b64url_decode, hkdf_sha256
from .env import SECRET_KEY


class TokenOpener:
    """Opens the tokens baa stores, from the documented format (README,
    "Tokens at rest"), with libcrypto through ctypes:

    v1.<kid>.<b64url(nonce[12] || AES-256-GCM ciphertext || tag[16])>
    associated data = b"v1|<users.id>|access" or b"v1|<users.id>|refresh"
    kid = b64url(HMAC-SHA256(key, b"baa token key id")[:6])
    the default key = HKDF-SHA256(BAA_SECRET_KEY, info=b"baa token encryption v1")
    """

    DERIVED_INFO = b"baa token encryption v1"
    _lib = None

    def __init__(self, keys=None, secret_key=SECRET_KEY):
        """keys: raw 32-byte keys; none means the one derived from secret_key."""
        if not keys:
            keys = [self.derived_key(secret_key)]
        self.keys = {self.kid(k): k for k in keys}

    @classmethod
    def derived_key(cls, secret_key=SECRET_KEY):
        return hkdf_sha256(secret_key.encode("utf-8"), cls.DERIVED_INFO)

    @staticmethod
    def kid(key):
        return b64url(hmac.new(key, b"baa token key id", hashlib.sha256).digest()[:6])

    @classmethod
    def _libcrypto(cls):
        if cls._lib is None:
            import ctypes
            import ctypes.util
            lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
            vp, ip = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)
            lib.EVP_CIPHER_CTX_new.restype = vp
            lib.EVP_CIPHER_CTX_free.argtypes = [vp]
            lib.EVP_aes_256_gcm.restype = vp
            lib.EVP_DecryptInit_ex.argtypes = [vp, vp, vp, ctypes.c_char_p, ctypes.c_char_p]
            lib.EVP_DecryptUpdate.argtypes = [vp, vp, ip, ctypes.c_char_p, ctypes.c_int]
            lib.EVP_CIPHER_CTX_ctrl.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
            lib.EVP_DecryptFinal_ex.argtypes = [vp, vp, ip]
            cls._lib = (ctypes, lib)
        return cls._lib

    @classmethod
    def aes_gcm_open(cls, key, nonce, ciphertext, tag, aad):
        """The plaintext bytes, or None when the tag does not match."""
        ctypes, lib = cls._libcrypto()
        EVP_CTRL_AEAD_SET_TAG = 0x11
        ctx = lib.EVP_CIPHER_CTX_new()
        out = ctypes.create_string_buffer(len(ciphertext) + 16)
        n, m = ctypes.c_int(0), ctypes.c_int(0)
        try:
            ok = (lib.EVP_DecryptInit_ex(ctx, lib.EVP_aes_256_gcm(), None, key, nonce) == 1
                  and lib.EVP_DecryptUpdate(ctx, None, ctypes.byref(n), aad, len(aad)) == 1
                  and lib.EVP_DecryptUpdate(ctx, out, ctypes.byref(n), ciphertext,
                                            len(ciphertext)) == 1
                  and lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1
                  and lib.EVP_DecryptFinal_ex(ctx, ctypes.addressof(out) + n.value,
                                              ctypes.byref(m)) == 1)
        finally:
            lib.EVP_CIPHER_CTX_free(ctx)
        return out.raw[:n.value + m.value] if ok else None

    @staticmethod
    def parse(value):
        """-> (kid, nonce, ciphertext, tag); ValueError when not a sealed value."""
        version, kid, body = value.split(".")
        raw = b64url_decode(body)
        if version != "v1" or len(raw) < 28:
            raise ValueError("not a sealed token")
        return kid, raw[:12], raw[12:-16], raw[-16:]

    def open(self, value, user_id, column):
        """The token text, or None when it does not open for this row and column
        (column: "spotify_token" or "refresh_token")."""
        try:
            kid, nonce, ciphertext, tag = self.parse(value)
        except ValueError:
            return None
        if kid not in self.keys:
            return None
        role = {"spotify_token": b"access", "refresh_token": b"refresh"}[column]
        aad = b"v1|%d|%s" % (int(user_id), role)
        plain = self.aes_gcm_open(self.keys[kid], nonce, ciphertext, tag, aad)
        return plain.decode("utf-8") if plain is not None else None
