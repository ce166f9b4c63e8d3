"""`baa serve` process management: workers, signals, graceful shutdown."""

import collections
import os
import signal
import threading
import time
import unittest

from harness import (Baa, BackgroundRequest, BaaTestCase, Hammer, Nginx, SiteNginx, pid_alive,
                     port_is_free, wait_until)
from harness.tags import slow


class ServeLifecycleTest(BaaTestCase):

    workers = 2

    def assertWorkersGone(self, pids):
        wait_until(lambda: not [p for p in pids if pid_alive(p)], 3,
                   message="workers still alive after the master exited: %r" % [p for p in pids if pid_alive(p)])

    def test_master_starts_exactly_baa_workers_children(self):
        baa, nginx = self.start_stack(self.env(workers=3))
        self.assertEqual(len(baa.workers()), 3)
        time.sleep(0.3)  # stays stable
        self.assertEqual(len(baa.workers()), 3)
        self.assertEqual(nginx.get("/healthz")[0], 200)

    def test_baa_workers_defaults_to_the_cpu_count(self):
        env = self.env()
        del env["BAA_WORKERS"]
        b = Baa(self.tmp)
        self.addCleanup(b.stop)
        b.serve(env)
        cpus = {os.cpu_count(), len(os.sched_getaffinity(0))}
        wait_until(lambda: len(b.workers()) in cpus, 5,
                   message="expected %s workers, have %r" % (sorted(cpus), b.workers()))

    def test_baa_listen_defaults_to_127_0_0_1_port_9000(self):
        if not port_is_free(9000):
            self.skipTest("127.0.0.1:9000 is in use on this machine")
        env = self.env()
        del env["BAA_LISTEN"]
        b = Baa(self.tmp)
        self.addCleanup(b.stop)
        b.serve(env)
        nginx = Nginx("127.0.0.1:9000")
        self.addCleanup(nginx.stop)
        nginx.start()
        self.get_json(nginx, "/healthz", expect=200)

    def test_shutdown_timeout_bounds_the_wait_for_a_stuck_request(self):
        baa, nginx = self.start_stack(self.env(workers=2, BAA_SHUTDOWN_TIMEOUT=1))
        for _ in range(4):
            self.assertEqual(nginx.get("/readyz")[0], 200)
        worker_pids = baa.workers()
        session = self.pg.session(self.db)
        self.addCleanup(session.close)
        session.hold_lock("schema_migrations")
        req = BackgroundRequest(nginx.port, "GET", "/readyz", timeout=30)
        wait_until(lambda: session.waiting_lockers() >= 1 or req.done.is_set(), 10,
                   message="request did not get in flight")
        t0 = time.monotonic()
        baa.signal(signal.SIGTERM)
        baa.wait(4)  # 1 s timeout + slack; the lock is still held meanwhile
        self.assertLess(time.monotonic() - t0, 4)
        self.assertWorkersGone(worker_pids)
        session.commit()

    def test_sigterm_on_idle_server_exits_0_quickly(self):
        baa, nginx = self.start_stack()
        self.assertEqual(nginx.get("/healthz")[0], 200)
        workers = baa.workers()
        t0 = time.monotonic()
        baa.signal(signal.SIGTERM)
        rc = baa.wait(3)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(rc, 0, baa.log()[-2000:])
        self.assertWorkersGone(workers)

    def test_sigint_stops_serve_cleanly_with_status_0(self):
        baa, nginx = self.start_stack()
        self.assertEqual(nginx.get("/readyz")[0], 200)
        workers = baa.workers()
        baa.signal(signal.SIGINT)
        rc = baa.wait(5)
        self.assertEqual(rc, 0, baa.log()[-2000:])
        self.assertWorkersGone(workers)

    def test_serve_on_unix_socket_answers_healthz_and_readyz_through_nginx(self):
        sock = os.path.join(self.tmp, "baa-unix1.sock")
        # socket permissions are not part of the contract: let nginx reach it as root
        baa, nginx = self.start_stack(self.env(BAA_LISTEN=sock), nginx_user="root")
        self.assertTrue(os.path.exists(sock))
        status, _, doc = self.get_json(nginx, "/healthz", expect=200)
        self.assertEqual(doc, {"status": "ok"})
        self.get_json(nginx, "/readyz", expect=200)

    def test_sigterm_on_idle_unix_socket_server_exits_0_and_removes_socket(self):
        sock = os.path.join(self.tmp, "baa-unix2.sock")
        baa, nginx = self.start_stack(self.env(BAA_LISTEN=sock), nginx_user="root")
        self.assertEqual(nginx.get("/healthz")[0], 200)
        t0 = time.monotonic()
        baa.signal(signal.SIGTERM)
        rc = baa.wait(3)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(rc, 0, baa.log()[-2000:])
        self.assertFalse(os.path.exists(sock), "unix socket file left behind")

    def test_sigterm_lets_in_flight_requests_finish_then_exits_0(self):
        workers = 3
        baa, nginx = self.start_stack(self.env(workers=workers, BAA_SHUTDOWN_TIMEOUT=10))
        for _ in range(2 * workers):  # every worker has connected and seen the schema
            self.assertEqual(nginx.get("/readyz")[0], 200)
        worker_pids = baa.workers()
        session = self.pg.session(self.db)
        self.addCleanup(session.close)
        session.hold_lock("schema_migrations")
        inflight = 2
        reqs = [BackgroundRequest(nginx.port, "GET", "/readyz", timeout=30) for _ in range(inflight)]
        wait_until(lambda: session.waiting_lockers() >= inflight or any(r.done.is_set() for r in reqs), 10,
                   message="requests did not get in flight (waiting on the lock)")
        self.assertFalse(any(r.done.is_set() for r in reqs),
                         "a request finished while the lock was held: %r" % [r.result for r in reqs])
        baa.signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertIsNone(baa.proc.poll(), "master exited with requests in flight: %s" % baa.log()[-2000:])
        self.assertFalse(any(r.done.is_set() for r in reqs),
                         "in-flight request ended before the lock was released: %r"
                         % [(r.result, r.error) for r in reqs])
        session.commit()
        for i, r in enumerate(reqs):
            self.assertTrue(r.wait(10), "in-flight request %d did not complete" % i)
            self.assertIsNone(r.error, "request %d failed: %r\n%s" % (i, r.error, baa.log()[-2000:]))
            self.assertEqual(r.result[0], 200, "request %d: %r\n%s\n%s" % (
                i, r.result, baa.log()[-2000:], nginx.error_log()[-1000:]))
        rc = baa.wait(10)
        self.assertEqual(rc, 0, baa.log()[-2000:])
        self.assertWorkersGone(worker_pids)

    def test_killed_worker_is_replaced_and_requests_keep_succeeding(self):
        baa, nginx = self.start_stack(self.env(workers=2))
        for _ in range(4):
            self.assertEqual(nginx.get("/healthz")[0], 200)
        before = baa.workers()
        self.assertEqual(len(before), 2)
        victim = before[0]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        statuses = []
        for _ in range(200):
            try:
                statuses.append(nginx.get("/healthz", timeout=10)[0])
            except Exception as exc:
                statuses.append(repr(exc))
        failed = [s for s in statuses if s != 200]
        self.assertEqual(failed, [], "%d of 200 requests failed after kill -9 of a worker\n%s" % (
            len(failed), nginx.error_log()[-1500:]))

        def replaced():
            now = baa.workers()
            return len(now) == 2 and victim not in now
        wait_until(replaced, max(0.2, 3.5 - (time.monotonic() - t0)),
                   message="worker not replaced within ~3s: before=%r now=%r" % (before, baa.workers()))
        after = baa.workers()
        self.assertNotIn(victim, after)
        self.assertIsNone(baa.proc.poll())

    @slow("a reload under load")
    def test_sighup_replaces_every_worker_without_failed_requests(self):
        baa, nginx = self.start_stack(self.env(workers=2))
        self.assertEqual(len(baa.workers()), 2)
        hammer = Hammer(nginx.port, ["/healthz", "/readyz"], threads=3, timeout=10, max_requests=20000)
        self.addCleanup(hammer.stop)
        hammer.start()
        wait_until(lambda: hammer.count() >= 30, 10, message="hammer made no progress")
        # A reload is quick; three in a row widen the window the hammer covers.
        for round_ in range(3):
            before = set(baa.workers())
            self.assertEqual(len(before), 2)
            count_before = hammer.count()
            baa.signal(signal.SIGHUP)

            def replaced():
                now = set(baa.workers())
                return len(now) == 2 and not (now & before)
            wait_until(replaced, 15, message="round %d: workers not all replaced: before=%r now=%r"
                       % (round_, sorted(before), baa.workers()))
            # keep hammering the new generation for a while
            wait_until(lambda: hammer.count() >= count_before + 30, 10,
                       message="round %d: hammer stalled after SIGHUP" % round_)
        results = hammer.stop()
        failures = [r for r in results if r[1] != 200]
        self.assertEqual(failures[:10], [], "%d of %d requests failed during SIGHUP\n%s\n%s" % (
            len(failures), len(results), nginx.error_log()[-1500:], baa.log()[-1500:]))
        self.assertIsNone(baa.proc.poll(), "master must survive SIGHUP")
        self.assertEqual(len(baa.workers()), 2)

if __name__ == "__main__":
    unittest.main()


class CrashLoopTest(BaaTestCase):

    workers = 1

    def test_workers_dying_young_are_respawned_with_a_growing_delay(self):
        baa, nginx = self.start_stack()
        # Kill each new worker as soon as it appears: a crash loop.
        killed = set()
        for _ in range(4):
            wait_until(lambda: [p for p in baa.workers() if p not in killed], 15,
                       message="worker was not respawned")
            pid = [p for p in baa.workers() if p not in killed][0]
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        delays = [int(r["delay_ms"]) for r in baa.log_records()
                  if r.get("event") == "respawn_delayed"]
        self.assertGreaterEqual(len(delays), 3, baa.log()[-3000:])
        self.assertEqual(delays[:3], [100, 200, 400])
        # The loop ends: once workers live, service comes back.
        wait_until(lambda: len(baa.workers()) == 1, 15, message="no worker after the crash loop")
        wait_until(lambda: nginx.get("/healthz")[0] == 200, 10)


class SilentConnectionTest(BaaTestCase):

    workers = 1

    def test_a_silent_connection_does_not_hold_the_worker(self):
        # A peer that connects and then says nothing (a web server on a host
        # whose link went down) is dropped after BAA_IO_TIMEOUT; the only
        # worker then serves the next request.
        import socket
        env = self.env(BAA_IO_TIMEOUT="1")
        baa, nginx = self.start_stack(env)
        host, port = env["BAA_LISTEN"].rsplit(":", 1)
        silent = socket.create_connection((host, int(port)))
        self.addCleanup(silent.close)
        # Let the worker take the silent connection first.
        time.sleep(0.3)
        t0 = time.monotonic()
        status = nginx.get("/healthz", timeout=8)[0]
        waited = time.monotonic() - t0
        self.assertEqual(status, 200)
        self.assertLess(waited, 4, "the worker was held %.1fs by a silent connection" % waited)
        self.assertEqual(len(baa.workers()), 1)


class StoppingInstanceTest(BaaTestCase):
    """One of two instances behind the shipped site stops while POSTs flow."""

    def test_post_sent_while_an_instance_stops_is_answered_by_the_other(self):
        # A worker that kept its copy of the listening socket while it
        # drained let the kernel complete connections nobody accepted: nginx
        # sent the POST, got a reset ~2 s later, and could not send it again.
        a, b = Baa(self.tmp), Baa(self.tmp)
        for inst in (a, b):
            self.addCleanup(inst.stop)
            inst.serve(self.env())
        site = SiteNginx([a.env["BAA_LISTEN"], b.env["BAA_LISTEN"]], fail_timeout=1).start()
        self.addCleanup(site.stop)
        outcomes, lock, stop = collections.Counter(), threading.Lock(), threading.Event()

        def post():
            while not stop.is_set():
                try:
                    status = site.request("POST", "/logout")[0]
                except Exception as e:  # noqa: BLE001 - counted, shown below
                    status = type(e).__name__
                with lock:
                    outcomes[status] += 1
                time.sleep(0.01)
        threads = [threading.Thread(target=post, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(20), 0)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(15)
        self.assertGreater(outcomes[200], 50, outcomes)
        self.assertEqual(set(outcomes), {200}, "POSTs not answered 200: %r; nginx: %r"
                         % (outcomes, site.upstream_errors()))
