"""Each worker keeps one PostgreSQL connection for its whole life."""

from harness import BaaTestCase


class PersistentConnectionTest(BaaTestCase):

    workers = 2

    def baa_backends(self):
        """(pid, backend_start) of baa's server processes on this database."""
        return set(tuple(row) for row in self.pg.psql_rows(
            "SELECT pid, backend_start FROM pg_stat_activity "
            "WHERE application_name = 'baa' AND datname = '%s'" % self.db))

    def test_requests_reuse_one_connection_per_worker(self):
        baa, nginx = self.start_stack()
        for _ in range(40):
            self.assertEqual(nginx.get("/readyz")[0], 200)
        first = self.baa_backends()
        self.assertGreaterEqual(len(first), 1)
        self.assertLessEqual(len(first), self.workers,
                             "more connections than workers: %r" % (first,))
        for _ in range(200):
            self.assertEqual(nginx.get("/readyz")[0], 200)
        after = self.baa_backends()
        # Connections seen first are still the same (pid and start time):
        # none was closed and reopened; and never more than one per worker,
        # however many requests were served.
        self.assertTrue(first <= after, "reopened: %r" % (first - after,))
        self.assertLessEqual(len(first | after), self.workers,
                             "more connections than workers: %r" % (first | after,))

    def test_healthz_opens_no_connection(self):
        baa, nginx = self.start_stack()
        for _ in range(30):
            self.assertEqual(nginx.get("/healthz")[0], 200)
        self.assertEqual(self.baa_backends(), set())
