"""GET /metrics: Prometheus text, one set of counters per instance."""

import os
import re
import signal

from harness import BaaTestCase, parse_metrics, wait_until


class MetricsTest(BaaTestCase):

    workers = 2

    def scrape(self, nginx):
        status, headers, body = nginx.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"))
        return parse_metrics(body.decode())

    def test_requests_are_counted_by_route_and_status_across_workers(self):
        baa, nginx = self.start_stack()
        for _ in range(30):
            self.assertEqual(nginx.get("/healthz")[0], 200)
        for _ in range(5):
            self.assertEqual(nginx.get("/nope")[0], 404)
        nginx.request("POST", "/healthz")
        m = self.scrape(nginx)
        self.assertEqual(m['baa_requests_total{route="healthz",status="200"}'], 30)
        self.assertEqual(m['baa_requests_total{route="none",status="404"}'], 5)
        self.assertEqual(m['baa_requests_total{route="none",status="405"}'], 1)
        self.assertEqual(m['baa_request_duration_seconds_count{route="healthz"}'], 30)
        self.assertEqual(m['baa_request_duration_seconds_bucket{route="healthz",le="+Inf"}'], 30)
        # Buckets are cumulative.
        buckets = [v for k, v in m.items()
                   if k.startswith('baa_request_duration_seconds_bucket{route="healthz"')]
        self.assertEqual(buckets, sorted(buckets))

    def test_counters_survive_a_killed_worker_and_count_the_restart(self):
        baa, nginx = self.start_stack()
        for _ in range(20):
            self.assertEqual(nginx.get("/healthz")[0], 200)
        before = self.scrape(nginx)
        self.assertEqual(before["baa_worker_restarts_total"], 0)
        victim = baa.workers()[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(baa.workers()) == self.workers and victim not in baa.workers(), 5)
        after = self.scrape(nginx)
        self.assertEqual(after['baa_requests_total{route="healthz",status="200"}'], 20)
        self.assertEqual(after["baa_worker_restarts_total"], 1)

    def test_every_sample_line_is_valid_exposition_format(self):
        baa, nginx = self.start_stack()
        nginx.get("/readyz")
        status, _, body = nginx.request("GET", "/metrics")
        line_re = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')
        for line in body.decode().splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                continue
            self.assertRegex(line, line_re)
        self.assertIn("baa_spotify_calls_total", body.decode())
        self.assertIn("baa_db_reconnects_total", body.decode())
