#!/usr/bin/python3
"""A slow Spotify must not starve everyone: /me latency during a login storm.

Spotify's stand-in answers every call after 300 ms; 50 clients log in over
and over (GET /login -> authorize at the stand-in -> GET /callback) while
wrk measures GET /me of an already logged-in user, through the shipped
nginx configuration (scripts/render-nginx). Twice: with the Spotify routes
sharing the instances with everything else, and with them on an instance
of their own (SPOTIFY_UPSTREAMS). Prints a markdown table.

usage: tests/load/storm.py [--seconds 8] [--clients 50] [--delay-ms 300]
"""

import argparse
import http.client
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402

# baa's default BAA_SESSION_TTL: the steady user's cookie has more than half
# of it left, so that no /me renews it (a renewal writes the row).
SESSION_TTL = 30 * 86400

TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def get(url, cookie=None):
    u = urllib.parse.urlsplit(url)
    conn = (http.client.HTTPSConnection(u.hostname, u.port, context=TLS, timeout=30)
            if u.scheme == "https" else http.client.HTTPConnection(u.hostname, u.port, timeout=30))
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""),
                     headers={"Cookie": cookie} if cookie else {})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Location"), r.getheader("Set-Cookie")
    finally:
        conn.close()


class Storm:
    """Clients logging in again and again until stopped."""

    def __init__(self, base, clients):
        self.base = base
        self.clients = clients
        self.stop = threading.Event()
        self.done = 0
        self.failed = 0
        self.lock = threading.Lock()

    def one_login(self):
        status, location, set_cookie = get(self.base + "/login")
        if status != 302:
            return False
        oauth = set_cookie.split(";", 1)[0]
        status, back, _ = get(location)
        if status != 302:
            return False
        path = urllib.parse.urlsplit(back)
        status, _, _ = get(self.base + path.path + "?" + path.query, cookie=oauth)
        return status == 302

    def loop(self):
        while not self.stop.is_set():
            try:
                ok = self.one_login()
            except OSError:
                ok = False
            with self.lock:
                if ok:
                    self.done += 1
                else:
                    self.failed += 1

    def __enter__(self):
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(40)


def wrk_me(port, cookie, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c8", "-d%ds" % seconds, "--latency", "--timeout", "10s",
         "-H", "Cookie: %s=%s" % (harness.SESSION_COOKIE, cookie), "https://127.0.0.1:%d/me" % port],
        capture_output=True, text=True, timeout=seconds + 30).stdout

    def ms(v, unit):
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
    p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(bad.group(1)) if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=300)
    args = ap.parse_args()

    state = harness.make_temp_dir("baa-storm-")
    for sub in ("run", "log", "nginx/tmp"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    https_port, http_port = harness.free_port(), harness.free_port()
    redirect = "https://127.0.0.1:%d/callback" % https_port
    try:
        pg = harness.cluster()
        fake = harness.start_fake_spotify(redirect_uri=redirect)
        for endpoint in ("token", "me"):
            fake.set_fault(endpoint, delay_ms=args.delay_ms)
        db = "baa_storm"
        env = harness.base_env(db, workers=2)
        env.update(harness.spotify_env(redirect, fake.url))
        res = harness.Baa(state).run(["resetdb"], env=env)
        assert res.returncode == 0, res.stderr
        uid = int(pg.psql_value(
            "INSERT INTO users (spotify_id, display_name, spotify_token, refresh_token,"
            " token_expires_at, authorized_at) VALUES ('steady', 'Steady User', 'T', 'R',"
            " now() + interval '1 day', now()) RETURNING id", db=db))
        cookie = harness.mint_session(pg, db, uid, ttl=SESSION_TTL)

        sockets = []
        for i in (1, 2, 3):
            sock = os.path.join(state, "run", "baa-%d.sock" % i)
            # The Spotify instance's workers mostly wait: it gets more of them.
            harness.Baa(state).serve(dict(env, BAA_LISTEN=sock, BAA_WORKERS="2" if i < 3 else "8"))
            sockets.append("unix:" + sock)

        rows = []
        for mode in ("shared", "isolated"):
            extra = {"LOGIN_RATE": "10000r/s", "LOGIN_BURST": "10000"}
            if mode == "isolated":
                extra["SPOTIFY_UPSTREAMS"] = sockets[2]
                upstreams = sockets[:2]
            else:
                upstreams = sockets
            subprocess.run([os.path.join(REPO, "scripts", "render-nginx"), "local", state,
                            str(http_port), str(https_port)] + upstreams,
                           check=True, env=dict(os.environ, **extra))
            conf = os.path.join(state, "nginx", "nginx.conf")
            nginx = harness.register_process(subprocess.Popen(
                [harness.NGINX_BIN, "-p", os.path.join(state, "nginx"), "-c", conf,
                 "-e", os.path.join(state, "log", "nginx-error.log")],
                stdin=subprocess.DEVNULL, start_new_session=True))
            harness.wait_until(lambda: harness.port_answers(https_port), 10)
            quiet = wrk_me(https_port, cookie, 2)
            with Storm("https://127.0.0.1:%d" % https_port, args.clients) as storm:
                time.sleep(1)
                busy = wrk_me(https_port, cookie, args.seconds)
                logins, failed = storm.done, storm.failed
            rows.append((mode, quiet, busy, logins, failed))
            harness.kill_process_tree(nginx, 15)
            nginx.wait(10)
            time.sleep(0.5)

        print("| Spotify routes | /me p99 quiet | /me req/s during storm | /me p50 | /me p99 "
              "| /me non-2xx | logins done | login failures |")
        print("|---|---|---|---|---|---|---|---|")
        for mode, quiet, busy, logins, failed in rows:
            print("| %s | %.2f ms | %.0f | %.2f ms | %.2f ms | %d | %d | %d |" % (
                mode, quiet[2], busy[0], busy[1], busy[2], busy[3], logins, failed))
        print("\n- %d login clients, Spotify stand-in answering after %d ms, %d s of wrk -t1 -c8; "
              "instances of 2, 2 and 8 workers; shared: all 3 in every pool; isolated: instance 3 "
              "serves /login, /callback, /me/token" % (args.clients, args.delay_ms, args.seconds))
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
