"""Tests of the fake's serving part: HTTPS, connection counts, keep-alive.

    /usr/bin/python3 -m unittest discover -s tests/fake_spotify -p 'test_*.py'

baa's integration tests trust these counts (a kept connection is one
handshake, a dropped one is really gone, Connection: close really closes),
so each is checked here against what a TLS client sees.
"""

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from certs import CertificateAuthority, ServerCertificates  # noqa: E402
from client import FakeSpotify, FakeSpotifyError  # noqa: E402
import server  # noqa: E402

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "fedcba9876543210fedcba9876543210"
REDIRECT = "https://127.0.0.1:8443/callback"


class HttpsTests(unittest.TestCase):
    """One HTTPS fake for the class, reset before every test."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fake-spotify-certs-")
        cls.certs = ServerCertificates(cls.dir)
        cls.fake = FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT],
                                     tls_cert=cls.certs.cert_file, tls_key=cls.certs.key_file,
                                     ca_file=cls.certs.ca_file)

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.fake.reset()

    def context(self, ca_file=None):
        return ssl.create_default_context(cafile=ca_file or self.certs.ca_file)

    def connect(self, context=None, session=None):
        """A TLS socket to the fake (its certificate verified for 127.0.0.1)."""
        sock = socket.create_connection(("127.0.0.1", self.fake.port), timeout=5)
        return (context or self.context()).wrap_socket(sock, server_hostname="127.0.0.1",
                                                       session=session)

    def kept(self):
        conn = http.client.HTTPSConnection("127.0.0.1", self.fake.port, timeout=5,
                                           context=self.context())
        self.addCleanup(conn.close)
        return conn

    @staticmethod
    def get(conn, path, method="GET", body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()

    # -- HTTPS itself

    def test_serves_https_with_a_certificate_for_the_loopback_address(self):
        self.assertTrue(self.fake.url.startswith("https://127.0.0.1:"), self.fake.url)
        tokens = self.fake.login()  # authorize, token exchange: every check as over http
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)
        with self.connect() as tls:
            self.assertIn(tls.version(), ("TLSv1.2", "TLSv1.3"))
            self.assertEqual(tls.selected_alpn_protocol(), None)  # none offered here
        ctx = self.context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with self.connect(ctx) as tls:
            self.assertEqual(tls.selected_alpn_protocol(), "http/1.1", "the fake has no HTTP/2")

    def test_a_client_that_does_not_trust_the_ca_refuses_it_and_it_is_counted(self):
        other = CertificateAuthority(self.dir, "stranger")
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.connect(self.context(other.ca_file))
        stats = self.fake.stats()
        self.assertEqual(stats["tls_failed"], 1, stats)

    def test_plain_http_to_the_https_port_gets_no_answer(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=5)
        with self.assertRaises((http.client.HTTPException, OSError)):
            conn.request("GET", "/_fake/health")
            conn.getresponse()
        conn.close()
        self.assertEqual(self.fake.stats()["tls_failed"], 1)

    # -- counts

    def test_a_kept_connection_is_one_handshake_and_api_calls_mark_it(self):
        conn = self.kept()
        for _ in range(3):
            resp, _ = self.get(conn, "/v1/me", headers={"Authorization": "Bearer nope"})
            self.assertEqual(resp.status, 401)
        resp, _ = self.get(conn, "/_fake/health")
        self.assertEqual(resp.status, 200)
        conn.close()
        stats = self.fake.stats()  # + the connection asking
        self.assertEqual((stats["connections"], stats["tls_handshakes"]), (2, 2), stats)
        self.assertEqual(stats["api_connections"], 1, stats)
        first = self.fake.connections()["connections"][0]
        self.assertEqual((first["requests"], first["api"], first["tls"]), (4, True, True), first)

    def test_reset_zeroes_the_counts(self):
        self.fake.health()
        self.fake.health()
        self.fake.reset()
        stats = self.fake.stats()
        self.assertEqual(stats["connections"], 1, stats)  # the one asking
        self.assertEqual(stats["api_connections"], 0, stats)

    def test_a_session_is_resumed_unless_resumption_is_off(self):
        ctx = self.context()  # a session resumes only from the context that made it
        with self.connect(ctx) as tls:
            tls.sendall(b"GET /_fake/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while tls.recv(4096):  # TLS 1.3 tickets come after the handshake
                pass
            session = tls.session
        with self.connect(ctx, session=session) as tls:
            self.assertTrue(tls.session_reused)
        self.assertEqual(self.fake.stats()["tls_resumed"], 1)
        self.fake.set_connections(resumption=False)
        with self.connect(ctx, session=session) as tls:
            self.assertFalse(tls.session_reused, "a session from before was resumed")
        self.assertFalse(self.fake.connections()["resumption"])
        self.fake.reset()
        self.assertTrue(self.fake.connections()["resumption"])

    # -- keep-alive and dropped connections

    def test_keep_alive_off_closes_after_every_api_answer(self):
        self.fake.set_connections(keep_alive=False)
        conn = self.kept()
        resp, _ = self.get(conn, "/_fake/health")  # not an API call: kept
        self.assertIsNone(resp.getheader("Connection"))
        self.assertIsNotNone(conn.sock)
        for path in ("/v1/me", "/api/token"):
            resp, _ = self.get(conn, path, method="GET")
            self.assertIn(resp.status, (401, 405), path)
            self.assertEqual(resp.getheader("Connection"), "close", path)
            self.assertIsNone(conn.sock, "http.client kept a connection the server closed")
        self.fake.reset()
        resp, _ = self.get(conn, "/v1/me")
        self.assertIsNone(resp.getheader("Connection"))
        self.assertIsNotNone(conn.sock)

    def test_drop_connections_closes_the_kept_ones_but_not_the_asker(self):
        conn = self.kept()
        self.get(conn, "/_fake/health")
        self.assertEqual(self.fake.connections()["open"], 2)  # it and the asker
        self.assertEqual(self.fake.drop_connections(), 1)
        conn.sock.settimeout(5)
        self.assertEqual(conn.sock.recv(1), b"", "the kept connection is still open")
        self.assertEqual(self.fake.connections()["open"], 1)

    def test_transport_settings_are_checked(self):
        for bad in ({"keep_alive": "no"}, {"nope": True}, [1]):
            with self.subTest(bad=bad), self.assertRaises(FakeSpotifyError):
                self.fake._control("POST", "/_fake/connections", bad)
        resp = self.fake.request("GET", "/_fake/drop_connections")
        self.assertEqual(resp.status, 405)


class PlainHttpTests(unittest.TestCase):
    """Without --tls-cert: plain HTTP, counted the same way."""

    def test_plain_http_connections_are_counted_without_tls(self):
        fake = FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
        self.addCleanup(fake.stop)
        self.assertTrue(fake.url.startswith("http://"))
        fake.reset()
        tokens = fake.login()
        fake.me(tokens["access_token"])
        stats = fake.stats()
        self.assertEqual((stats["tls_handshakes"], stats["api_connections"]), (0, 2), stats)
        self.assertFalse(fake.connections()["tls"])


class CommandLineTests(unittest.TestCase):
    def run_server(self, *extra):
        argv = [sys.executable, server.__file__, "--client-id", CLIENT_ID, "--client-secret",
                CLIENT_SECRET, "--redirect-uri", REDIRECT, "--port", "0"] + list(extra)
        return subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)

    def test_tls_cert_and_key_go_together_and_must_load(self):
        res = self.run_server("--tls-cert", "/nonexistent.pem")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(b"--tls-cert and --tls-key go together", res.stderr)
        res = self.run_server("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(b"cannot use --tls-cert/--tls-key", res.stderr)

    def test_client_needs_a_ca_to_trust_for_https(self):
        with self.assertRaises(ValueError):
            FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT], tls_cert="c", tls_key="k")


if __name__ == "__main__":
    unittest.main()
