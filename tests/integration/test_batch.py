"""Session checks looked up together: a worker takes every whole request
its wake-up found, sends the session checks the cache cannot answer to
PostgreSQL in one statement, and each request then takes its own answer
(src/worker.c prefetch_sessions, src/sessions.c sessions_prefetch,
its check_many statement).

Covered, with one worker so that concurrent requests share its wake-ups,
with the cache off (every request reads PostgreSQL) and on (over more
users than it has seen): many users asking at once each get their own
profile, never another's; an ended session in a batch is refused and its
neighbours are not; the same session asked by many requests at once
answers each; requests on new connections (one per request) are batched
too; /metrics shows the batches happened; PostgreSQL going
away mid-load gives 503s, not a dead worker, and batches work again after
it is back.
"""

import json
import random

from harness import (SESSION_COOKIE, BaaTestCase, mint_session, parse_metrics,
                     run_concurrently, wait_until)

USERS = 48


class BatchedSessionChecksTest(BaaTestCase):
    workers = 1
    profile_cache = "off"
    kept = True  # nginx keeps its connections to baa

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baa, cls.nginx = cls.start_class_stack(
            cls.env(BAA_PROFILE_CACHE=cls.profile_cache, BAA_HOUSEKEEPING_INTERVAL=86400),
            kept=cls.kept)
        cls.users = []
        for i in range(USERS):
            spotify_id = "batch-%s-%02d" % (cls.profile_cache, i)
            user_id = int(cls.pg.psql_value(
                "INSERT INTO users (spotify_id, display_name, spotify_token, token_expires_at,"
                " authorized_at) VALUES ('%s', 'User %d', 'T', now() + interval '1 hour', now())"
                " RETURNING id" % (spotify_id, i), db=cls.db))
            cookie = mint_session(cls.pg, cls.db, user_id, ttl=30 * 86400)
            cls.users.append({"id": user_id, "spotify_id": spotify_id, "cookie": cookie})

    def me(self, user, path="/me"):
        return self.nginx.request("GET", path, headers={
            "Cookie": "%s=%s" % (SESSION_COOKIE, user["cookie"])}, timeout=15)

    def metrics(self):
        status, _, body = self.nginx.get("/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(body.decode())

    def batched(self):
        return self.metrics().get('baa_session_lookups_total{source="batch"}', 0)

    def assertOwnProfiles(self, users, results, ended=()):
        for user, result in zip(users, results):
            self.assertFalse(isinstance(result, Exception), result)
            status, _, body = result
            if user["id"] in ended:
                self.assertEqual(status, 401, "an ended session was served: %r" % body)
                continue
            self.assertEqual(status, 200, "%s: %r\n%s" % (user["spotify_id"], body,
                                                           self.baa.log()[-1500:]))
            doc = json.loads(body)
            self.assertEqual((doc["id"], doc["spotify_id"]), (user["id"], user["spotify_id"]),
                             "a request got another user's profile")

    def burst(self, users, path="/me"):
        return run_concurrently([lambda u=u: self.me(u, path) for u in users])

    def test_many_users_at_once_each_get_their_own_profile_in_batches(self):
        before = self.batched()
        rounds = 0
        # Until the worker has looked sessions up together (a wake-up that
        # found two requests or more), at most 20 rounds.
        while rounds < 20 and (rounds < 4 or self.batched() == before):
            self.renew_sessions()
            users = random.sample(self.users, len(self.users))
            self.assertOwnProfiles(users, self.burst(users))
            rounds += 1
        self.assertGreater(self.batched(), before, "no session check was batched in %d rounds"
                           " of %d concurrent requests" % (rounds, USERS))
        m = self.metrics()
        self.assertGreater(m["baa_db_batches_total"], 0)
        self.assertGreaterEqual(m["baa_db_batched_requests_total"], 2 * m["baa_db_batches_total"])

    def test_one_session_asked_many_times_in_a_batch_answers_each_request(self):
        # A page's parallel requests carry the same cookie: the batch asks
        # each session once, and every request still gets its user's
        # profile (a few users, each many times, shuffled together).
        before = self.batched()
        few = self.users[:4]
        rounds = 0
        while rounds < 20 and (rounds < 4 or self.batched() == before):
            self.renew_sessions()
            users = random.sample(few * 10, len(few) * 10)
            self.assertOwnProfiles(users, self.burst(users))
            rounds += 1
        self.assertGreater(self.batched(), before)

    def test_an_ended_session_in_a_batch_is_refused_and_its_neighbours_are_not(self):
        ended = {u["id"] for u in self.users[::5]}
        victims = [u for u in self.users if u["id"] in ended]
        # served (and, cache on, cached) before they end
        self.assertOwnProfiles(victims, self.burst(victims))
        self.pg.psql("DELETE FROM sessions WHERE user_id IN (%s)"
                     % ",".join(map(str, sorted(ended))), db=self.db)
        self.addCleanup(self.restore_sessions, victims)
        before = self.batched()
        for _ in range(6):
            users = random.sample(self.users, len(self.users))
            self.assertOwnProfiles(users, self.burst(users), ended=ended)
        self.assertGreater(self.batched(), before)

    def restore_sessions(self, victims):
        for u in victims:
            u["cookie"] = mint_session(self.pg, self.db, u["id"], ttl=30 * 86400)

    def test_token_route_checks_its_sessions_in_batches_too(self):
        # Each user's answer alone first (the rows hold no token baa could
        # serve, so it is the same refusal each time, after the session
        # passed): in a batch, every request must get its own user's.
        alone = {u["id"]: self.me(u, "/me/token")[::2] for u in self.users}
        self.assertNotIn(b"not logged in", alone[self.users[0]["id"]][1])
        self.renew_sessions()
        before = self.batched()
        for _ in range(6):
            results = self.burst(self.users, path="/me/token")
            for user, result in zip(self.users, results):
                self.assertFalse(isinstance(result, Exception), result)
                self.assertEqual(result[::2], alone[user["id"]], user)
            self.renew_sessions()
        self.assertGreater(self.batched(), before)

    def renew_sessions(self):
        """New sessions for every user: the cache, when on, has seen none."""
        if self.profile_cache == "on":
            for u in self.users:
                u["cookie"] = mint_session(self.pg, self.db, u["id"], ttl=30 * 86400)

    def test_postgres_going_away_mid_batch_is_503_and_batches_resume(self):
        self.addCleanup(self.pg.ensure_running)
        pid = self.baa.workers()
        # fast, not immediate: the test cluster runs without synchronous
        # commit, and a crash would lose the sessions minted just before
        self.pg.stop(mode="fast")
        results = self.burst(self.users[:16])
        for r in results:
            self.assertFalse(isinstance(r, Exception), r)
            self.assertIn(r[0], (200, 503), r)  # 200: served from the cache
        self.pg.start()
        wait_until(lambda: all(r[0] == 200 for r in self.burst(self.users[:8])), 20,
                   message="/me did not come back after PostgreSQL did")
        before = self.batched()
        for _ in range(8):
            self.renew_sessions()
            self.assertOwnProfiles(self.users, self.burst(self.users))
        self.assertGreater(self.batched(), before, "no batch after the restart")
        self.assertEqual(self.baa.workers(), pid, "a worker died")


class BatchedSessionChecksWithTheCacheTest(BatchedSessionChecksTest):
    """The cache on: its misses (first requests, ended sessions) are batched."""
    profile_cache = "on"


class BatchedOnNewConnectionsTest(BatchedSessionChecksTest):
    """A connection per request (nginx's auth_request, the routes that wait
    on Spotify): the first requests of the connections a worker accepts
    together are batched too."""
    kept = False
