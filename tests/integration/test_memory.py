"""A worker's memory over thousands of requests: valgrind's memcheck finds no
invalid access and no leak.

`baa serve` (the normal build) runs under valgrind with one worker, behind
nginx (harness.Nginx) and with the fake Spotify, and is driven through every
route and outcome: /healthz, /readyz, /metrics, /me (profile cache hits,
misses after a change of the row, 401 for bad cookies), /me/token (fresh,
refreshed at Spotify, a refresh that fails, a dead grant), /login (302,
400), /callback (a full login, declined, forged, Spotify failing), /logout
(this session and everywhere), /me/sessions (listed, one ended, bad ids),
/me/activity, a renewed cookie, a first-format cookie adopted, a cookie sent
twice, a cross-site POST, DELETE /me, 404, 405 and HEAD. Then baa is stopped with SIGTERM, so the
worker leaves through its normal exit path and valgrind writes its leak
summary: no errors, nothing definitely or indirectly lost. What libraries
keep for the life of the process (OpenSSL's, libcurl's, libpq's globals)
shows up as "still reachable", which is fine; no suppression is needed.
Two runs, of 300 and of 3000 requests: what the worker still holds at its
exit must not grow with the number of requests it served.

valgrind follows the fork without exec (the worker is the master's child),
one log file per process (--log-file=vg.%p), with BAA_SANDBOX=off (valgrind
cannot host the workers' seccomp filter). Skipped on a sanitizer build
(ASan and valgrind cannot share a process): that build has its own leak
check (detect_leaks in the sanitizer run).
"""

import os
import re
import shlex
import shutil
import signal
import time

from harness import (LEGACY_SESSION_COOKIE, SESSION_COOKIE, Baa, CookieSigner, Nginx,
                     SpotifyTestCase, baa_bin, make_temp_dir, read_text, wait_until)
from harness.tags import slow

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"

# Requests a run makes at least (each round makes about 60): a short run
# and a long one. What a worker holds at its exit must not grow with the
# number of requests it served (a reachable leak, such as a list that only
# grows, is no valgrind error): at most GROWTH_MAX bytes more after ten
# times the requests, which 8 bytes kept per request would exceed.
SHORT_RUN, LONG_RUN = 300, 3000
GROWTH_MAX = 16384


def is_sanitizer_build(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


@slow("thousands of requests under valgrind")
class WorkerMemoryTest(SpotifyTestCase):
    class_stack = False
    workers = 1

    def setUp(self):
        super().setUp()
        if is_sanitizer_build(baa_bin()):
            self.skipTest("BAA_BIN is a sanitizer build: valgrind cannot run it (the sanitizer "
                          "round checks leaks itself)")
        self.assertTrue(os.access(VALGRIND, os.X_OK), "valgrind is not installed (scripts/setup-debian)")

    def start_under_valgrind(self):
        """baa serve under valgrind, one worker, behind nginx -> (baa, nginx, vg dir)."""
        vg_dir = make_temp_dir("baa-it-vg-")
        args = ["--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                "--trace-children=no", "--child-silent-after-fork=no", "--num-callers=30",
                "--log-file=%s/vg.%%p" % vg_dir]
        wrapper = os.path.join(vg_dir, "baa-under-valgrind")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s %s \"$@\"\n" % (
                shlex.quote(VALGRIND), " ".join(shlex.quote(a) for a in args), shlex.quote(baa_bin())))
        os.chmod(wrapper, 0o755)
        baa = Baa(make_temp_dir("baa-it-serve-"))
        baa.bin = wrapper
        self.addCleanup(baa.stop)
        # A worker's exit includes valgrind's leak check: give it time.
        # No sandbox under valgrind: valgrind 3.19 does not implement
        # seccomp(2), so the worker could not install its filter (and one
        # loaded through prctl would hold valgrind's own calls to the
        # worker's list). Memory is what this test is about; every other
        # test runs the workers sandboxed.
        baa.serve(self.login_env(BAA_SHUTDOWN_TIMEOUT=120, BAA_SANDBOX="off"), timeout=120)
        nginx = Nginx(baa.env["BAA_LISTEN"])
        self.addCleanup(nginx.stop)
        nginx.start()
        return baa, nginx, vg_dir

    # -- the drive ---------------------------------------------------------
    def expect(self, resp, status, what):
        self.assertEqual(resp.status, status, "%s: %r%s" % (what, resp, self.stack_context()))
        self.count += 1
        return resp

    def login(self, nginx, what="login"):
        b = self.browser(nginx)
        r = b.login(self.fake)
        self.assertTrue(r.ok, "%s: %s%s" % (what, r.describe(), self.stack_context()))
        self.count += 2
        return b, r.session_cookie

    def round(self, nginx, i):
        """One pass over every route and outcome (about 60 requests)."""
        anon = self.browser(nginx)
        # Tokens that expire within baa's 60 s margin every other round:
        # /me/token then refreshes them at the fake.
        expiring = i % 2 == 1
        self.fake.configure(expires_in=30 if expiring else 3600)
        b, cookie = self.login(nginx)

        self.expect(b.get("/me"), 200, "/me, a cache miss")
        for _ in range(20):
            self.expect(b.get("/me"), 200, "/me, a cache hit")
        self.expect(b.request("HEAD", "/me"), 200, "HEAD /me")
        for _ in range(3):
            self.expect(b.get("/me/token"), 200, "/me/token " + ("refreshed" if expiring else "fresh"))
        # A change of the row: PostgreSQL's notification reaches the worker
        # a moment after the commit, and the next /me misses the cache.
        self.pg.psql("UPDATE users SET display_name = 'Renamed %d'" % i, db=self.db)
        wait_until(lambda: self.expect(b.get("/me"), 200, "/me after a change").json()["display_name"]
                   == "Renamed %d" % i, 15, message="/me never showed the changed row")

        if expiring and i % 4 == 1:
            self.fake.set_fault("token", status=500, grant_type="refresh_token")
            self.expect(b.get("/me/token"), 502, "/me/token, the refresh fails")
            self.fake.clear_faults()
        if expiring and i % 4 == 3:
            self.fake.revoke_refresh_tokens()
            self.expect(b.get("/me/token"), 401, "/me/token, the grant is dead")
            b, cookie = self.login(nginx, "login after a dead grant")

        for _ in range(10):
            self.expect(anon.get("/healthz"), 200, "/healthz")
        self.expect(anon.request("HEAD", "/healthz"), 200, "HEAD /healthz")
        self.expect(anon.get("/readyz"), 200, "/readyz")
        self.expect(anon.get("/metrics"), 200, "/metrics")
        self.expect(anon.get("/nowhere/%d" % i), 404, "404")
        self.expect(anon.request("POST", "/me"), 405, "405")
        self.expect(anon.request("PUT", "/login"), 405, "405")
        self.expect(anon.get("/login?next=//evil.example"), 400, "/login, bad next")
        self.expect(anon.get("/login?next=%zz"), 400, "/login, bad encoding")
        self.expect(anon.get("/callback?error=access_denied"), 403, "/callback, declined")
        self.expect(anon.get("/callback?code=c&state=s"), 400, "/callback, no login cookie")
        self.expect(anon.get("/callback?code=c&code=d&state=s"), 400, "/callback, two codes")
        now = int(time.time())
        sid = CookieSigner.parse_session(cookie)["session_id"]
        forged = CookieSigner("another-secret-key-for-the-memory-test-0123").sign_session(sid, now + 300)
        for what, value in (("garbage", "garbage"), ("forged", forged), ("empty", ""),
                            ("long", "x" * 4000), ("expired", self.signer.sign_session(sid, now - 5)),
                            ("no such session", self.signer.sign_session(os.urandom(32), now + 300))):
            for path in ("/me", "/me/token"):
                self.expect(anon.get(path, cookies={SESSION_COOKIE: value}), 401, "%s %s cookie" % (path, what))
        self.expect(anon.get("/me", headers={"Cookie": "%s=%s; %s=%s" % (
            SESSION_COOKIE, cookie, SESSION_COOKIE, cookie)}), 401, "/me, the cookie sent twice")
        self.expect(anon.delete("/me"), 401, "DELETE /me, no session")

        # Sessions: a second device, listed, ended from the first; the
        # activity; a cookie in the second half of its life, renewed.
        b2, cookie2 = self.login(nginx, "a second device")
        listed = self.expect(b.get("/me/sessions"), 200, "/me/sessions").json()["sessions"]
        other = self.session_row(cookie2)["id"]
        self.assertIn(other, [s["id"] for s in listed if not s["current"]], listed)
        self.expect(b.get("/me/activity"), 200, "/me/activity")
        self.expect(b.delete("/me/sessions/%d" % other), 200, "DELETE /me/sessions/{id}")
        self.expect(b.delete("/me/sessions/%d" % other), 404, "DELETE /me/sessions/{id}, gone")
        self.expect(b.delete("/me/sessions/x1"), 404, "DELETE /me/sessions/{id}, malformed")
        self.expect(b2.get("/me"), 401, "/me of the ended session")
        renewed = self.expect(anon.get("/me", cookies={SESSION_COOKIE: self.signer.sign_session(
            sid, now + 60)}), 200, "/me, a cookie renewed")
        self.assertIn(SESSION_COOKIE, renewed.set_cookies, renewed)
        self.expect(b.post("/logout", headers={"Sec-Fetch-Site": "cross-site"}), 403,
                    "/logout, cross-site")

        # A cookie of the first format, for a user who existed before the
        # cutover (moved here to now), is adopted into a session of its own.
        uid = b.get("/me").json()["id"]
        self.count += 1
        generation = int(self.pg.psql_value(
            "UPDATE session_cookie_cutover SET at = now();"
            " SELECT session_generation FROM users WHERE id = %d" % uid, db=self.db))
        legacy = self.signer.sign_legacy_session(uid, generation, now + 300)
        adopted = self.expect(anon.get("/me", cookies={LEGACY_SESSION_COOKIE: legacy}), 200,
                              "/me, a first-format cookie adopted")
        self.assertIn(SESSION_COOKIE, adopted.set_cookies, adopted)

        if i % 3 == 0:
            # Spotify fails the code exchange: 502, nothing stored.
            self.fake.set_fault("token", status=500, grant_type="authorization_code")
            r = self.browser(nginx).login(self.fake)
            self.count += 2
            self.assertEqual(r.callback.status, 502, r.describe())
            self.fake.clear_faults()

        old = cookie
        logout = "/logout?everywhere=1" if i % 2 else "/logout"
        self.expect(b.post(logout), 200, logout)
        self.expect(anon.get("/me", cookies={SESSION_COOKIE: old}), 401, "/me after " + logout)
        b, cookie = self.login(nginx, "login after logout")
        self.expect(b.delete("/me"), 200, "DELETE /me")
        self.expect(anon.get("/me", cookies={SESSION_COOKIE: cookie}), 401, "/me after DELETE")

    # -- a run -------------------------------------------------------------
    def run_under_valgrind(self, requests):
        """A fresh baa under valgrind, driven with at least `requests`
        requests, stopped; its reports checked -> bytes the worker held at exit."""
        baa, nginx, vg_dir = self.start_under_valgrind()
        workers = baa.workers()
        self.assertEqual(len(workers), 1, workers)
        self.count = 0
        i = 0
        while self.count < requests:
            self.round(nginx, i)
            i += 1
        self.assertEqual(baa.workers(), workers, "the worker was replaced:\n" + baa.log()[-3000:])

        baa.signal(signal.SIGTERM)
        self.assertEqual(baa.wait(180), 0, "baa serve did not stop cleanly:\n" + baa.log()[-3000:])
        nginx.stop()

        held = None
        for pid, what in ((workers[0], "worker"), (baa.pid, "master")):
            report = read_text(os.path.join(vg_dir, "vg.%d" % pid))
            what = "%s after %d requests (%s)" % (what, self.count, vg_dir)
            self.assertIn("ERROR SUMMARY:", report, "no valgrind report for the %s: %r"
                          % (what, os.listdir(vg_dir)))
            self.assertIn("ERROR SUMMARY: 0 errors", report, "%s:\n%s" % (what, report[-20000:]))
            for kind in ("definitely", "indirectly"):
                lost = re.search(r"%s lost: ([\d,]+) bytes" % kind, report)
                self.assertTrue(lost is None or lost.group(1) == "0", "%s:\n%s" % (what, report[-20000:]))
            in_use = re.search(r"in use at exit: ([\d,]+) bytes", report)
            self.assertIsNotNone(in_use, report)
            if held is None:
                held = int(in_use.group(1).replace(",", ""))
        # valgrind's --error-exitcode would have shown here too
        self.assertRegex(baa.log(), r"event=worker_exited pid=%d status=0 " % workers[0])
        return held

    # -- the test -----------------------------------------------------------
    def test_worker_has_no_leak_and_no_invalid_access_after_thousands_of_requests(self):
        short = self.run_under_valgrind(SHORT_RUN)
        long = self.run_under_valgrind(LONG_RUN)
        self.assertLessEqual(long - short, GROWTH_MAX,
                             "the worker held %d bytes at exit after %d requests, %d after %d"
                             % (short, SHORT_RUN, long, LONG_RUN))
