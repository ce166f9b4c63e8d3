"""The FastCGI endpoints, always exercised through a real nginx.

ROUTES is the routing contract, one row per request: adding a case is
adding a row; test_every_route_answers_as_the_table_says is its driver.
"""

import re
import secrets
import time
import unittest

from harness import BackgroundRequest, BaaTestCase, wait_until


def request_records(baa):
    return [r for r in _records(baa) if r.get("event") == "request"]


def _records(baa):
    out = []
    for line in baa.log_lines():
        try:
            out.append(parse(line))
        except ValueError:
            pass
    return out


def parse(line):
    from harness import parse_logfmt
    return parse_logfmt(line)


# Any JSON object with an "error" member.
ERROR = "error"
# (method, path, status, JSON body: a dict it equals, ERROR, or None for an
# empty body (HEAD), Allow header or None)
ROUTES = [
    ("GET", "/healthz", 200, {"status": "ok"}, None),
    # readiness: the class's database is migrated
    ("GET", "/readyz", 200, {"status": "ready"}, None),
    # the query string plays no part in routing
    ("GET", "/healthz?x=1", 200, {"status": "ok"}, None),
    ("HEAD", "/healthz", 200, None, None),
    ("GET", "/", 404, ERROR, None),
    ("GET", "/nope", 404, ERROR, None),
    ("GET", "/healthz/extra", 404, ERROR, None),
    ("GET", "/healthzz", 404, ERROR, None),
    ("POST", "/healthz", 405, ERROR, "GET, HEAD"),
    ("PUT", "/healthz", 405, ERROR, "GET, HEAD"),
    ("DELETE", "/readyz", 405, ERROR, "GET, HEAD"),
    ("POST", "/readyz", 405, ERROR, "GET, HEAD"),
]


class EndpointsTest(BaaTestCase):
    """One baa + nginx for the whole class (the endpoints are stateless)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baa, cls.nginx = cls.start_class_stack()

    def context(self):
        return "\n--- baa log (tail) ---\n%s\n--- nginx error log (tail) ---\n%s" % (
            self.baa.log()[-2000:], self.nginx.error_log()[-1500:])

    def wait_for_request_log(self, predicate, timeout=5):
        def find():
            return [r for r in request_records(self.baa) if predicate(r)]
        try:
            return wait_until(find, timeout)
        except AssertionError:
            self.fail("no matching event=request log line within %ss%s" % (timeout, self.context()))

    def test_every_route_answers_as_the_table_says(self):
        for method, path, status, body, allow in ROUTES:
            with self.subTest(method=method, path=path):
                if body is None:  # HEAD: the GET's headers, no body
                    got, hdrs, raw = self.nginx.request(method, path)
                    self.assertEqual(got, status)
                    self.assertEqual(raw, b"")
                    self.assertTrue(hdrs.get("Content-Type", "").startswith("application/json"),
                                    hdrs.items())
                    continue
                _, hdrs, doc = self.get_json(self.nginx, path, method=method, expect=status)
                if body == ERROR:
                    self.assertIn("error", doc)
                else:
                    self.assertEqual(doc, body)
                if allow is not None:
                    self.assertEqual(hdrs.get("Allow"), allow)

    def test_readyz_is_200_on_every_worker(self):
        for i in range(3 * self.workers):
            with self.subTest(request=i):
                self.get_json(self.nginx, "/readyz", expect=200)

    def test_request_is_logged_as_logfmt_with_method_path_status_duration_and_worker_pid(self):
        path = "/no-such-page-%s" % secrets.token_hex(4)
        self.get_json(self.nginx, path, expect=404)
        recs = self.wait_for_request_log(lambda r: r.get("path") == path)
        self.assertEqual(len(recs), 1, recs)
        rec = recs[0]
        self.assertEqual(rec.get("method"), "GET", rec)
        self.assertEqual(rec.get("status"), "404", rec)
        self.assertEqual(rec.get("level"), "info", rec)
        self.assertIn("ts", rec)
        self.assertRegex(rec.get("duration_ms", ""), r"^\d+(\.\d+)?$")
        self.assertIn(int(rec.get("pid", "0")), self.baa.workers(), "pid must be a worker's: %r" % rec)

    def test_log_values_with_spaces_and_quotes_are_quoted(self):
        token = secrets.token_hex(3)
        raw = '/sp ace"quote-%s' % token
        self.get_json(self.nginx, '/sp%%20ace%%22quote-%s' % token, expect=404)
        wait_until(lambda: [l for l in self.baa.log_lines() if token in l], 5,
                   message="request not logged" + self.context())
        lines = [l for l in self.baa.log_lines() if token in l]
        self.assertEqual(len(lines), 1, lines)
        rec = parse(lines[0])
        self.assertEqual(rec.get("path"), raw, lines[0])
        self.assertEqual(rec.get("status"), "404", lines[0])

    def test_healthz_request_is_logged_with_status_200(self):
        before = len([r for r in request_records(self.baa) if r.get("path") == "/healthz"])
        self.get_json(self.nginx, "/healthz", expect=200)
        self.wait_for_request_log(lambda r: r.get("path") == "/healthz" and r.get("status") == "200")
        wait_until(lambda: len([r for r in request_records(self.baa) if r.get("path") == "/healthz"]) > before,
                   5, message="the /healthz request was not logged" + self.context())

    def test_every_log_line_is_logfmt_with_ts_and_level(self):
        self.get_json(self.nginx, "/healthz", expect=200)
        self.wait_for_request_log(lambda r: True)
        lines = self.baa.log_lines()
        self.assertTrue(lines)
        for line in lines:
            with self.subTest(line=line):
                rec = parse(line)
                self.assertIn("ts", rec)
                self.assertIn(rec.get("level"), ("debug", "info", "warn", "warning", "error"))
        self.assertTrue(any(r.get("event") == "listening" for r in _records(self.baa)))

    def test_query_string_cookies_and_header_values_never_appear_in_logs(self):
        secret = "hunter2" + secrets.token_hex(3)
        cookie = "cookie" + secrets.token_hex(6)
        auth = "bearer" + secrets.token_hex(6)
        custom = "hdrval" + secrets.token_hex(6)
        agent = "agent" + secrets.token_hex(6)
        headers = {"Cookie": "session=%s" % cookie, "Authorization": "Bearer %s" % auth,
                   "X-Custom-Header": custom, "User-Agent": agent, "Referer": "http://x/%s" % custom}
        before = len(request_records(self.baa))
        self.get_json(self.nginx, "/healthz?secret=%s" % secret, headers=headers, expect=200)
        self.get_json(self.nginx, "/nope?token=%s" % secret, headers=headers, expect=404)
        wait_until(lambda: len(request_records(self.baa)) >= before + 2, 5,
                   message="requests were not logged" + self.context())
        log = self.baa.log()
        for value in (secret, cookie, auth, custom, agent):
            self.assertNotIn(value, log)
        self.assertNotIn("secret=", log)
        new = request_records(self.baa)[before:]
        self.assertIn("/healthz", [r.get("path") for r in new], new)
        self.assertIn("/nope", [r.get("path") for r in new], new)
        for r in new:
            self.assertNotIn("?", r.get("path", ""), r)

    def test_readyz_blocks_while_schema_migrations_is_locked(self):
        self.get_json(self.nginx, "/readyz", expect=200)
        session = self.pg.session(self.db)
        self.addCleanup(session.close)
        session.hold_lock("schema_migrations")
        req = BackgroundRequest(self.nginx.port, "GET", "/readyz", timeout=30)
        wait_until(lambda: session.waiting_lockers() >= 1 or req.done.is_set(), 10)
        self.assertFalse(req.done.is_set(), "readyz answered although schema_migrations is locked: %r"
                         % (req.result,))
        time.sleep(0.3)
        self.assertFalse(req.done.is_set(), "readyz must wait for the lock")
        session.commit()
        self.assertTrue(req.wait(10), "readyz did not finish after the lock was released")
        self.assertIsNone(req.error)
        self.assertEqual(req.result[0], 200, req.result)


class ReadyzDatabaseStateTest(BaaTestCase):
    """readyz reflects whether the database works and the schema is migrated."""

    reset_database = False

    def test_readyz_is_503_on_unmigrated_database_then_200_after_migrate(self):
        db = self.db + "_empty"
        self.pg.create_database(db)
        self.addCleanup(self.pg.drop_database, db)
        baa, nginx = self.start_stack(self.env(db=db))
        for i in range(2 * self.workers):
            with self.subTest(request=i):
                status, hdrs, doc = self.get_json(nginx, "/readyz", expect=503)
                self.assertIn("error", doc)
        status, _, doc = self.get_json(nginx, "/healthz", expect=200)
        res = self.run_baa(["migrate"], self.env(db=db))
        self.assertEqual(res.returncode, 0, self.describe(res))
        for i in range(2 * self.workers):
            with self.subTest(request=i, after="migrate"):
                status, hdrs, doc = self.get_json(nginx, "/readyz", expect=200)
                self.assertEqual(doc, {"status": "ready"})

    def test_readyz_is_503_with_wrong_password_and_password_never_logged(self):
        wrong = "wrongpw-" + secrets.token_hex(8)
        env = self.env(POSTGRES_PW=wrong)
        try:
            baa, nginx = self.start_stack(env)
        except AssertionError as exc:
            # refusing to start is acceptable; leaking the password is not
            self.assertNotIn(wrong, str(exc))
            return
        for i in range(2 * self.workers):
            with self.subTest(request=i):
                status, _, doc = self.get_json(nginx, "/readyz", expect=503)
                self.assertIn("error", doc)
                self.assertNotIn(wrong, json_dump(doc))
        self.get_json(nginx, "/healthz", expect=200)
        wait_until(lambda: len(request_records(baa)) >= 2 * self.workers, 5)
        self.assertNotIn(wrong, baa.log())
        self.assertNotIn(self.pg.password, baa.log())


def json_dump(doc):
    import json
    return json.dumps(doc)


if __name__ == "__main__":
    unittest.main()
