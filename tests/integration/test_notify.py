"""systemd's readiness protocol (sd_notify, as a Type=notify unit sees it):
with NOTIFY_SOCKET set, the master says READY=1 once its socket is bound
and its workers forked, RELOADING=1 at SIGHUP and READY=1 again once
every worker of the old generation is gone, and STOPPING=1 at SIGTERM.
A datagram socket of the test's own stands in for systemd's.
"""

import os
import secrets
import signal
import socket

from harness import Baa, BaaTestCase, make_temp_dir, pid_alive, wait_until


class NotifyTest(BaaTestCase):
    workers = 2

    def setUp(self):
        super().setUp()
        name = "baa-it-notify-" + secrets.token_hex(6)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)  # abstract: no file nobody may not write to
        self.addCleanup(self.sock.close)
        self.sock.settimeout(20)
        self.notify_socket = "@" + name

    def next_message(self):
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            self.fail("baa said nothing to NOTIFY_SOCKET in 20 s")

    def test_ready_reloading_ready_stopping(self):
        baa = Baa(make_temp_dir("baa-it-notify-"))
        self.addCleanup(baa.stop)
        baa.serve(dict(self.env(), NOTIFY_SOCKET=self.notify_socket), wait_listening=False)
        self.assertEqual(self.next_message(), "READY=1")
        # Ready means served: the socket answers now.
        baa.wait_listening(5)
        old = set(baa.workers())
        self.assertEqual(len(old), 2)

        baa.proc.send_signal(signal.SIGHUP)
        self.assertEqual(self.next_message(), "RELOADING=1")
        self.assertEqual(self.next_message(), "READY=1")
        # Reloaded means every worker is new: none of the old is left.
        self.assertEqual([p for p in old if pid_alive(p)], [])
        self.assertEqual(len(set(baa.workers()) - old), 2)

        baa.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.next_message(), "STOPPING=1")
        wait_until(lambda: baa.proc.poll() is not None, 15, message="baa serve did not stop")
        self.assertEqual(baa.proc.returncode, 0)

    def test_without_notify_socket_nothing_is_sent_and_serve_runs(self):
        env = {k: v for k, v in self.env().items() if k != "NOTIFY_SOCKET"}
        baa = Baa(make_temp_dir("baa-it-notify-"))
        self.addCleanup(baa.stop)
        baa.serve(env)
        self.sock.settimeout(1)
        with self.assertRaises(socket.timeout):
            self.sock.recv(4096)
        self.assertTrue(os.path.exists(baa.logpath))
