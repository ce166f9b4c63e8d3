"""The production path to Spotify: TLS, kept connections, proxies, HTTP/2.

Every integration test reaches the stand-in over HTTPS (harness:
start_fake_spotify, with a throwaway CA baa trusts through
SPOTIFY_CA_FILE). These tests check what that path must do:

- a kept connection: several logins through one worker make one TLS
  handshake at the stand-in; a login after the stand-in dropped the kept
  connection still works (and resumes the TLS session);
- a certificate baa cannot verify (another CA, another name, the system
  store that never heard of the test CA) is a 502 with
  event=spotify_tls_failed outcome=certificate_unverified, and not one
  byte of a request reaches the stand-in: never a silent downgrade;
- configuration: SPOTIFY_CA_FILE must be a readable PEM file (for the user
  baa runs as), plain http to anything but loopback is refused at start; a
  worker keeps the CA store it read, the workers of a SIGHUP read it anew;
- HTTPS_PROXY (and https_proxy) carry the calls through a CONNECT proxy,
  NO_PROXY bypasses it, an unreachable proxy is a 502 (not a bypass);
- HTTP/2: with nginx (http2 on) in front of the stand-in, baa's calls
  arrive over HTTP/2 ($server_protocol in nginx's access log).
"""

import os
import shutil
import signal
import subprocess
import time

from connect_proxy import ConnectProxy
from harness import (IS_ROOT, NGINX_BIN, UNPRIVILEGED_USER, BaaTestCase, Baa,
                     SpotifyTestCase, group_name, nobody_ids, fake_spotify_certificates,
                     fake_spotify_certs, free_port, give_to_nobody, login_env, make_temp_dir,
                     port_answers, read_text, register_process, serve_env, start_fake_spotify,
                     wait_until)
from harness.tags import root_only

EXIT_CONFIG = 78


def spotify_calls(baa):
    """baa's event=spotify_call log records, in order."""
    return [r for r in baa.log_records() if r.get("event") == "spotify_call"]


class KeptConnectionTest(SpotifyTestCase):
    """One worker, so that every call to Spotify goes through the same handle."""

    workers = 1

    def api_connections(self):
        return [c for c in self.fake.connections()["connections"] if c["api"]]

    def test_logins_through_one_worker_share_one_tls_handshake(self):
        self.fake.drop_connections()  # whatever an earlier test left open
        self.fake.reset()
        time.sleep(2 * 0.05)  # baa's log is written in batches, at most 50 ms late
        logged = len(spotify_calls(self.baa))
        for i in range(5):
            self.fake.set_user("kept-%d" % i)
            self.login()
        stats = self.fake.stats()
        self.assertEqual(stats["token_authorization_code"], 5, stats)
        self.assertEqual(stats["me"], 5, stats)
        self.assertEqual(stats["api_connections"], 1,
                         "5 logins (10 calls) took %d connections to Spotify%s"
                         % (stats["api_connections"], self.stack_context()))
        conn, = self.api_connections()
        self.assertTrue(conn["tls"], conn)
        self.assertEqual(conn["requests"], 10, conn)
        wait_until(lambda: len(spotify_calls(self.baa)) >= logged + 10, 2)
        calls = spotify_calls(self.baa)[logged:]
        self.assertEqual([c["connects"] for c in calls], ["1"] + ["0"] * 9,
                         "baa's log does not show the kept connection")
        self.assertEqual({c["http"] for c in calls}, {"1.1"}, "the stand-in speaks HTTP/1.1")

    def test_a_login_after_the_stand_in_dropped_the_kept_connection_works(self):
        self.login()  # the worker now holds a connection to the stand-in
        self.fake.reset()
        self.assertEqual(self.fake.drop_connections(), 1, "baa held no connection")
        self.fake.set_user("after-drop")
        b, r = self.login()
        self.assertEqual(b.get("/me").status, 200)
        stats = self.fake.stats()
        self.assertEqual(stats["api_connections"], 1, stats)
        conn, = self.api_connections()
        # libcurl kept the TLS session too: the new connection resumes it
        self.assertTrue(conn["resumed"], "the new connection did a full handshake: %r" % conn)
        self.assertEqual(stats["token_authorization_code"], 1, "a call was sent twice: %r" % stats)


class UnverifiedCertificateTest(SpotifyTestCase):
    """A stand-in baa cannot verify: 502, a log line, and no request sent."""

    class_stack = False
    workers = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = fake_spotify_certs()
        directory = make_temp_dir("baa-it-badcerts-")
        cls.other_ca = certs.CertificateAuthority(directory, "other")
        cls.other_cert = cls.other_ca.issue("other-server")
        # From the CA baa trusts, but not for 127.0.0.1 (the test's own
        # client checks it as "localhost").
        cls.wrong_name = fake_spotify_certificates().ca.issue("wrong-name",
                                                              names=["DNS:localhost"])

    def check_refused(self, fake, name_checked_after_handshake=False, **env):
        url = "https://127.0.0.1:%d" % fake.port
        baa, nginx = self.start_stack(login_env(self.db, url, workers=1, **env))
        r = self.browser(nginx).login(fake)
        self.assertIsNotNone(r.callback, r.describe())
        self.assertJsonError(r.callback, 502, "callback")
        self.assertIsNone(r.session_cookie)
        self.assertEqual(self.raw_users(), [])
        wait_until(lambda: "event=spotify_tls_failed" in baa.log(), 2,
                   message="no event=spotify_tls_failed in baa's log:\n" + baa.log())
        failed = [x for x in baa.log_records() if x.get("event") == "spotify_tls_failed"]
        self.assertEqual(failed[0]["outcome"], "certificate_unverified", failed)
        self.assertEqual(failed[0]["endpoint"], "authorization_code", failed)
        self.assertIn("certificate", failed[0]["reason"], failed)
        self.assertEqual(failed[0]["level"], "error", failed)
        log = baa.log()
        self.assertNotIn(r.code, log, "the code is in the log")
        stats = fake.stats()
        self.assertEqual(stats["token"], 0, "a request went over an unverified connection")
        if name_checked_after_handshake:
            # libcurl checks the name once the handshake is done, then hangs up
            silent = [c for c in fake.connections()["connections"] if c["tls"] and not c["requests"]]
            self.assertTrue(silent, "baa never reached the stand-in: %r" % stats)
        else:
            self.assertGreaterEqual(stats["tls_failed"], 1, stats)
        return failed[0]

    def test_a_certificate_from_another_ca_is_refused(self):
        cert, key = self.other_cert
        fake = start_fake_spotify(tls_cert=cert, tls_key=key, ca_file=self.other_ca.ca_file)
        self.addCleanup(fake.stop)
        failed = self.check_refused(fake)
        self.assertIn("issuer", failed["reason"], failed)

    def test_a_certificate_for_another_name_is_refused(self):
        cert, key = self.wrong_name
        fake = start_fake_spotify(tls_cert=cert, tls_key=key, host="localhost",
                                  ca_file=fake_spotify_certificates().ca_file)
        self.addCleanup(fake.stop)
        failed = self.check_refused(fake, name_checked_after_handshake=True)
        self.assertIn("127.0.0.1", failed["reason"], failed)

    def test_without_spotify_ca_file_the_system_store_is_used(self):
        self.check_refused(self.fake, SPOTIFY_CA_FILE=None)

    def test_a_replaced_ca_file_is_read_by_the_workers_of_the_next_reload(self):
        ca_file = os.path.join(make_temp_dir("baa-it-cafile-"), "ca.pem")
        shutil.copy(fake_spotify_certificates().ca_file, ca_file)
        os.chmod(ca_file, 0o644)
        baa, nginx = self.start_stack(self.login_env(SPOTIFY_CA_FILE=ca_file))
        self.baa = baa
        self.login(nginx=nginx)
        shutil.copy(self.other_ca.ca_file, ca_file)  # trusts only another CA now
        # a new connection with a full handshake: the worker's store is the one it read
        self.fake.set_connections(resumption=False)
        self.fake.drop_connections()
        self.fake.set_user("same-worker")
        self.login(nginx=nginx)
        before = baa.workers()
        baa.signal(signal.SIGHUP)
        wait_until(lambda: baa.workers() and not set(baa.workers()) & set(before), 10,
                   message="SIGHUP did not replace the worker")
        self.fake.set_user("new-worker")
        r = self.browser(nginx).login(self.fake)
        self.assertJsonError(r.callback, 502, "after the reload")
        wait_until(lambda: "outcome=certificate_unverified" in baa.log(), 2,
                   message="the new worker did not refuse the stand-in:\n" + baa.log())


class TlsConfigurationTest(BaaTestCase):
    """What `baa serve` refuses at start."""

    workers = 1

    def serve_fails(self, **extra):
        env = serve_env(self.env(**extra))
        res = Baa(make_temp_dir("baa-it-tlsconf-")).run(["serve"], env, timeout=15)
        self.assertEqual(res.returncode, EXIT_CONFIG, self.describe(res))
        return res.stderr

    def test_a_missing_or_empty_ca_file_stops_baa_naming_the_variable(self):
        err = self.serve_fails(SPOTIFY_CA_FILE="/nonexistent/ca.pem")
        self.assertIn("Environment variable 'SPOTIFY_CA_FILE' names a file that cannot be read "
                      "(No such file or directory).", err)
        empty = os.path.join(make_temp_dir("baa-it-tlsconf-"), "empty.pem")
        open(empty, "w").close()
        err = self.serve_fails(SPOTIFY_CA_FILE=empty)
        self.assertIn("'SPOTIFY_CA_FILE' names a file without a PEM certificate", err)

    @root_only("the file is readable at the check, not after the drop")
    def test_a_ca_file_baa_user_cannot_read_stops_baa(self):
        path = os.path.join(make_temp_dir("baa-it-tlsconf-"), "root-only.pem")
        with open(fake_spotify_certificates().ca_file) as src, open(path, "w") as dst:
            dst.write(src.read())
        os.chmod(path, 0o600)
        err = self.serve_fails(SPOTIFY_CA_FILE=path)
        self.assertIn("'SPOTIFY_CA_FILE' names a file that BAA_USER (%s) cannot read "
                      "(Permission denied)." % UNPRIVILEGED_USER, err)

    def test_plain_http_is_refused_for_spotify_urls_not_on_loopback(self):
        for variable in ("SPOTIFY_ACCOUNTS_URL", "SPOTIFY_API_URL"):
            for url in ("http://accounts.spotify.com", "http://10.1.2.3:8080"):
                with self.subTest(variable=variable, url=url):
                    err = self.serve_fails(**{variable: url})
                    self.assertIn("Environment variable '%s' must use https" % variable, err)


class ProxyTest(SpotifyTestCase):
    """HTTPS_PROXY through a CONNECT proxy; NO_PROXY around it."""

    class_stack = False
    workers = 1

    def login_through(self, **env):
        """A stack with env (proxy variables), one login: -> the LoginResult."""
        baa, nginx = self.start_stack(self.login_env(**env))
        self.baa = baa
        return self.browser(nginx).login(self.fake)

    def proxy(self):
        proxy = ConnectProxy().start()
        self.addCleanup(proxy.stop)
        return proxy

    def test_https_proxy_carries_the_calls_to_spotify(self):
        target = "127.0.0.1:%d" % self.fake.port
        for variable in ("HTTPS_PROXY", "https_proxy"):
            with self.subTest(variable=variable):
                proxy = self.proxy()
                self.fake.reset()
                r = self.login_through(**{variable: proxy.url})
                self.assertTrue(r.ok, r.describe() + self.stack_context())
                # one tunnel, kept: both calls of the login went through it
                self.assertEqual(proxy.tunnels, [target], proxy.refused)
                self.assertEqual(self.fake.stats()["api_connections"], 1)

    def test_no_proxy_bypasses_the_proxy(self):
        proxy = self.proxy()
        r = self.login_through(HTTPS_PROXY=proxy.url, NO_PROXY="127.0.0.1")
        self.assertTrue(r.ok, r.describe() + self.stack_context())
        self.assertEqual(proxy.tunnels, [], "NO_PROXY=127.0.0.1 went through the proxy")

    def test_an_unreachable_proxy_is_a_502_not_a_way_around_it(self):
        r = self.login_through(HTTPS_PROXY="http://127.0.0.1:%d" % free_port())
        self.assertJsonError(r.callback, 502, "callback")
        self.assertEqual(self.fake.stats()["token"], 0, "the call went around the proxy")


# nginx with TLS and HTTP/2 in front of the stand-in: what Spotify's edge does.
H2_FRONT_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user_line}pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format protocol '$server_protocol $request_method $uri $status';
    access_log {dir}/access.log protocol;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {upstream};
            proxy_ssl_verify off;  # loopback, the stand-in's own certificate
            proxy_http_version 1.1;
        }}
    }}
}}
"""


class Http2Test(SpotifyTestCase):
    """libcurl offers HTTP/2 (Debian 12: nghttp2); baa takes it when offered."""

    class_stack = False
    workers = 1

    def start_front(self):
        directory = make_temp_dir("baa-it-h2-")
        for sub in ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
            os.mkdir(os.path.join(directory, sub))
            give_to_nobody(os.path.join(directory, sub))
        certs = fake_spotify_certificates()
        port = free_port()
        user = "user %s %s;\n" % (UNPRIVILEGED_USER, group_name(nobody_ids()[1])) if IS_ROOT else ""
        conf = os.path.join(directory, "nginx.conf")
        with open(conf, "w") as f:
            f.write(H2_FRONT_CONF.format(dir=directory, port=port, user_line=user,
                                         cert=certs.cert_file, key=certs.key_file,
                                         upstream=self.fake.url))
        argv = [NGINX_BIN, "-p", directory + "/", "-c", conf, "-e",
                os.path.join(directory, "error.log")]
        proc = register_process(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL,
                                                 start_new_session=True))
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10)))
        wait_until(lambda: proc.poll() is None and port_answers(port), 10,
                   message="the HTTP/2 front did not start:\n%s"
                   % read_text(os.path.join(directory, "error.log")))
        return "https://127.0.0.1:%d" % port, os.path.join(directory, "access.log")

    def test_calls_to_spotify_use_http2_when_the_server_offers_it(self):
        url, access_log = self.start_front()
        baa, nginx = self.start_stack(self.login_env(SPOTIFY_ACCOUNTS_URL=url,
                                                     SPOTIFY_API_URL=url))
        self.baa = baa
        b, r = self.login(nginx=nginx)
        self.assertEqual(b.get("/me").status, 200)
        wait_until(lambda: "/v1/me" in read_text(access_log), 5)
        lines = read_text(access_log).splitlines()
        self.assertIn("HTTP/2.0 POST /api/token 200", lines)
        self.assertIn("HTTP/2.0 GET /v1/me 200", lines)
        self.assertEqual([l for l in lines if not l.startswith("HTTP/2.0 ")], [])
        wait_until(lambda: len(spotify_calls(baa)) >= 2, 2)
        calls = spotify_calls(baa)
        self.assertEqual([(c["endpoint"], c["http"], c["connects"]) for c in calls],
                         [("authorization_code", "2", "1"), ("me", "2", "0")])
