"""Behaviour while PostgreSQL goes away and comes back (baa keeps running)."""

import unittest

from harness import BaaTestCase, wait_until


class PostgresOutageTest(BaaTestCase):

    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baa, cls.nginx = cls.start_class_stack()

    def stop_postgres(self):
        self.addCleanup(self.pg.ensure_running)  # whatever happens, later tests get a server
        self.pg.stop(mode="fast")

    def warm_up(self):
        for _ in range(3 * self.workers):
            self.get_json(self.nginx, "/readyz", expect=200)

    def test_healthz_is_200_while_postgres_is_stopped(self):
        self.warm_up()
        self.stop_postgres()
        for i in range(3 * self.workers):
            with self.subTest(request=i):
                status, _, doc = self.get_json(self.nginx, "/healthz", expect=200)
                self.assertEqual(doc, {"status": "ok"})

    def test_readyz_is_503_while_postgres_is_stopped_and_200_again_after_restart(self):
        self.warm_up()
        workers_before = self.baa.workers()
        self.stop_postgres()
        for i in range(3 * self.workers):
            with self.subTest(request=i, postgres="stopped"):
                status, _, doc = self.get_json(self.nginx, "/readyz", expect=503, timeout=15)
                self.assertIn("error", doc)
        self.pg.start()
        wait_until(self.pg.ready, 10)
        statuses = [self.nginx.get("/readyz", timeout=15)[0] for _ in range(20)]
        self.assertEqual(statuses, [200] * 20, "after the restart every /readyz must be 200\n%s"
                         % self.baa.log()[-2000:])
        self.assertEqual(self.baa.workers(), workers_before, "baa (and its workers) must not restart")
        self.assertIsNone(self.baa.proc.poll())


if __name__ == "__main__":
    unittest.main()
