"""Clients that reach the FastCGI socket itself and trickle a request, a
byte at a time, must not hold baa's workers: with three times as many
tricklers as workers, GET /me through nginx answers as fast as it did
before they came, on a TCP socket and on a unix one. Each trickler is cut
off once BAA_IO_TIMEOUT has passed since its request began."""

import os
import socket
import struct
import threading
import time
import unittest

from harness import SpotifyTestCase, free_port, make_temp_dir, wait_until

IO_TIMEOUT = 3
TRICKLERS_PER_WORKER = 3
BYTE_EVERY = 0.3  # seconds: far below BAA_IO_TIMEOUT, so each read would wait
SAMPLES = 150

FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN = 1, 4, 5


def record(kind, content=b""):
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), 0, 0) + content


def pair(name, value):
    return bytes([len(name), len(value)]) + name + value


def fastcgi_request(uri=b"/healthz", body=None):
    """A whole request for uri, as nginx would send it."""
    params = pair(b"REQUEST_METHOD", b"POST" if body else b"GET") + pair(b"REQUEST_URI", uri)
    out = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 1)) + record(FCGI_PARAMS, params)
    out += record(FCGI_PARAMS)
    if body:
        out += record(FCGI_STDIN, body)
    return out + record(FCGI_STDIN)


def connect(listen):
    if listen.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(listen)
    else:
        host, port = listen.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    return s


def read_until_closed(s, timeout):
    """Everything the server sends until it closes; None if it did not close
    within timeout."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    except ConnectionResetError:
        return got
    except socket.timeout:
        return None


class Trickler(threading.Thread):
    """Sends a valid request one byte every BYTE_EVERY seconds, and notes
    when the server cuts it off."""

    def __init__(self, listen):
        super().__init__(daemon=True)
        self.sock = connect(listen)
        self.payload = fastcgi_request(uri=b"/me")
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.cut_after = None

    def run(self):
        for i in range(len(self.payload) - 1):  # never the last byte
            try:
                self.sock.sendall(self.payload[i:i + 1])
            except OSError:
                self.cut_after = time.monotonic() - self.started
                return
            if self.stopping.wait(BYTE_EVERY):
                return

    def stop(self):
        self.stopping.set()
        self.join(5)
        self.sock.close()


def p99(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class TrickleTests:
    """The tests, for a SpotifyTestCase whose listen_address says where baa
    listens."""

    workers = 2
    class_stack = False
    login_extra_env = {"BAA_IO_TIMEOUT": str(IO_TIMEOUT)}

    @classmethod
    def listen_address(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.listen = cls.listen_address()
        # nginx as root: the unix socket's permissions are not under test.
        cls.baa, cls.nginx = cls._start_stack(cls.login_env(BAA_LISTEN=cls.listen), "root",
                                              cls.addClassCleanup)

    def me_latencies(self, browser, seconds_max=20):
        """SAMPLES sequential GET /me through nginx: their durations, and the
        statuses of those that were not 200."""
        took, bad = [], []
        deadline = time.monotonic() + seconds_max
        while len(took) < SAMPLES and time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                resp = browser.get("/me", timeout=5)
                status = resp.status
            except OSError as e:
                status = repr(e)
            took.append(time.monotonic() - t0)
            if status != 200:
                bad.append(status)
        return took, bad

    def test_me_answers_as_usual_while_three_tricklers_per_worker_hold_on(self):
        b, _ = self.login()
        usual, bad = self.me_latencies(b)
        self.assertEqual((len(usual), bad), (SAMPLES, []))
        tricklers = [Trickler(self.listen) for _ in range(TRICKLERS_PER_WORKER * self.workers)]
        for t in tricklers:
            t.start()
            self.addCleanup(t.stop)
        time.sleep(2 * BYTE_EVERY)  # every trickler has been accepted and is sending
        during, bad = self.me_latencies(b)
        self.assertEqual(bad, [], "GET /me failed while tricklers were connected")
        self.assertEqual(len(during), SAMPLES, "GET /me too slow to finish its samples")
        # A worker caught by a trickler would add whole seconds; the bound
        # leaves room for noise on a shared machine, not for that.
        self.assertLess(p99(during), max(3 * p99(usual), p99(usual) + 0.1),
                        "p99 of GET /me: %.1f ms with tricklers, %.1f ms without" % (
                            p99(during) * 1e3, p99(usual) * 1e3))
        self.assertTrue(all(t.cut_after is None or t.cut_after >= IO_TIMEOUT - 0.5
                            for t in tricklers), "a trickler was cut off before its time")

    def test_trickler_is_cut_off_once_its_time_is_up(self):
        t = Trickler(self.listen)
        t.start()
        self.addCleanup(t.stop)
        wait_until(lambda: t.cut_after is not None or not t.is_alive(), IO_TIMEOUT + 5,
                   message="the trickler was never cut off")
        self.assertIsNotNone(t.cut_after, "the trickler finished without being cut off")
        self.assertGreaterEqual(t.cut_after, IO_TIMEOUT - 0.5)
        self.assertLess(t.cut_after, IO_TIMEOUT + 3)
        wait_until(lambda: "event=request_timeout" in self.baa.log(), 5,
                   message="no request_timeout log line")

    def test_request_in_pieces_within_its_time_is_answered(self):
        s = connect(self.listen)
        self.addCleanup(s.close)
        req = fastcgi_request(body=b"x=1")
        s.sendall(req[:20])
        time.sleep(1)
        s.sendall(req[20:-8])
        time.sleep(0.5)
        s.sendall(req[-8:])
        s.shutdown(socket.SHUT_WR)
        # Answered, and closed: the connection was to be kept, but the
        # client's end came with the request's last bytes.
        got = read_until_closed(s, 5)
        self.assertIsNotNone(got, "not answered and closed")
        self.assertRegex(got, rb"Status: [2-5]\d\d ", got)
        self.assertIn(record(3, b"\0" * 8)[:4], got, "no END_REQUEST record")

    def test_request_too_large_to_hold_is_refused_at_once(self):
        s = connect(self.listen)
        self.addCleanup(s.close)
        req = fastcgi_request()[:-8]  # its body never ends
        chunk = record(FCGI_STDIN, b"x" * 32000)
        t0 = time.monotonic()
        try:
            while len(req) < 80 * 1024:
                req += chunk
            s.sendall(req)
        except OSError:
            pass
        got = read_until_closed(s, IO_TIMEOUT + 5)
        self.assertIsNotNone(got, "the connection was kept")
        self.assertLess(time.monotonic() - t0, IO_TIMEOUT, "closed only by the deadline")
        wait_until(lambda: "event=request_too_large" in self.baa.log(), 5,
                   message="no request_too_large log line")


class TrickleOverTcpTest(TrickleTests, SpotifyTestCase):
    @classmethod
    def listen_address(cls):
        return "127.0.0.1:%d" % free_port()


class TrickleOverUnixSocketTest(TrickleTests, SpotifyTestCase):
    @classmethod
    def listen_address(cls):
        return os.path.join(make_temp_dir("baa-it-trickle-"), "baa.sock")


if __name__ == "__main__":
    unittest.main()
