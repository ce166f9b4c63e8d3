#!/usr/bin/python3
"""What connection reuse saves: logins through nginx against the HTTPS stand-in.

Each login is what a browser does: GET /login, consent at the stand-in,
GET /callback, where baa makes its two calls to Spotify (code exchange,
/v1/me). The same N logins run three times against one baa (as shipped:
one curl handle per worker, connections and TLS sessions kept), changing
only what the stand-in allows (tests/fake_spotify/server.py, Transport):

  kept           connections kept, as Spotify keeps them: no handshake
                 once each worker has its connection
  new+resumed    the stand-in closes after every answer to baa
                 (Connection: close), so each call opens a TCP connection
                 and resumes baa's TLS session: what baa without reuse
                 (CURLOPT_FORBID_REUSE) would pay
  new+full       the same without session tickets: a full TLS handshake
                 per call, what a fresh curl handle per call would pay

Reports logins/s, /callback latency (p50/p99), the TLS handshakes the
stand-in counted on baa's connections (full and resumed) per login, and
baa's CPU per login, as a markdown table. The clients keep their own
connections (to nginx and to the stand-in's consent page), so the only
connections that change between the rows are baa's.

usage: tests/load/handshake.py [--logins 300] [--clients 4] [--workers 2]
"""

import argparse
import http.client
import os
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

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = (("kept", {"keep_alive": True, "resumption": True}),
         ("new+resumed", {"keep_alive": False, "resumption": True}),
         ("new+full", {"keep_alive": False, "resumption": False}))


class Client:
    """One browser: a kept HTTPS connection to nginx and one to the stand-in."""

    def __init__(self, https_port, fake):
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # nginx's self-signed certificate
        self.nginx = http.client.HTTPSConnection("127.0.0.1", https_port, context=insecure,
                                                 timeout=30)
        trusted = ssl.create_default_context(cafile=fake.ca_file)
        self.fake = http.client.HTTPSConnection("127.0.0.1", fake.port, context=trusted,
                                                timeout=30)

    @staticmethod
    def get(conn, path, cookie=None):
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        resp.read()
        return resp

    def login(self):
        """One login: -> seconds /callback took, or None when it failed."""
        resp = self.get(self.nginx, "/login")
        if resp.status != 302:
            return None
        oauth = resp.getheader("Set-Cookie").split(";", 1)[0]
        at = urllib.parse.urlsplit(resp.getheader("Location"))
        resp = self.get(self.fake, at.path + "?" + at.query)
        if resp.status != 302:
            return None
        back = urllib.parse.urlsplit(resp.getheader("Location"))
        t0 = time.monotonic()
        resp = self.get(self.nginx, back.path + "?" + back.query, cookie=oauth)
        took = time.monotonic() - t0
        return took if resp.status == 302 else None

    def close(self):
        self.nginx.close()
        self.fake.close()


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def run_mode(name, settings, fake, https_port, baa, args):
    fake.drop_connections()
    fake.reset()
    fake.set_connections(**settings)
    clients = [Client(https_port, fake) for _ in range(args.clients)]
    for c in clients:  # warm up: the clients' connections, baa's kept ones
        c.login()
    fake.reset()  # counts from here (the settings go back to their defaults)
    fake.set_connections(**settings)
    workers = harness.child_pids(baa.pid)
    cpu0 = cpu_seconds(workers)
    latencies, failures, lock = [], [0], threading.Lock()
    per_client = args.logins // args.clients

    def loop(client):
        for _ in range(per_client):
            try:
                took = client.login()
            except (OSError, http.client.HTTPException):
                took = None
            with lock:
                if took is None:
                    failures[0] += 1
                else:
                    latencies.append(took)

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in clients]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(workers) - cpu0
    for c in clients:
        c.close()
    api = [c for c in fake.connections()["connections"] if c["api"]]
    stats = fake.stats()
    done = len(latencies)
    return {
        "mode": name, "logins": done, "failures": failures[0], "rate": done / wall,
        "p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
        "connections": stats["api_connections"],
        "full": sum(1 for c in api if c["tls"] and not c["resumed"]),
        "resumed": sum(1 for c in api if c["resumed"]),
        "cpu_ms": cpu * 1000 / max(done, 1),
        "calls": stats["token"] + stats["me"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logins", type=int, default=300, help="logins per row")
    ap.add_argument("--clients", type=int, default=4, help="browsers logging in at once")
    ap.add_argument("--workers", type=int, default=2, help="baa workers")
    args = ap.parse_args()

    state = harness.make_temp_dir("baa-handshake-")
    for sub in ("run", "log", "nginx/tmp"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    https_port, http_port = harness.free_port(), harness.free_port()
    redirect = "https://127.0.0.1:%d/callback" % https_port
    try:
        harness.cluster()
        fake = harness.start_fake_spotify(redirect_uri=redirect)
        db = "baa_handshake"
        env = harness.base_env(db, workers=args.workers)
        env.update(harness.spotify_env(redirect, fake.url))
        res = harness.Baa(state).run(["resetdb"], env=env)
        assert res.returncode == 0, res.stderr
        sock = os.path.join(state, "run", "baa.sock")
        baa = harness.Baa(state).serve(dict(env, BAA_LISTEN=sock))
        subprocess.run([os.path.join(REPO, "scripts", "render-nginx"), "local", state,
                        str(http_port), str(https_port), "unix:" + sock], check=True,
                       env=dict(os.environ, LOGIN_RATE="100000r/s", LOGIN_BURST="100000"),
                       stdout=subprocess.DEVNULL)
        conf = os.path.join(state, "nginx", "nginx.conf")
        harness.register_process(subprocess.Popen(
            [harness.NGINX_BIN, "-p", os.path.join(state, "nginx"), "-c", conf,
             "-e", os.path.join(state, "log", "nginx-error.log")],
            stdin=subprocess.DEVNULL, start_new_session=True))
        harness.wait_until(lambda: harness.port_answers(https_port), 10)

        rows = [run_mode(name, settings, fake, https_port, baa, args) for name, settings in MODES]

        print("| baa -> stand-in | logins | failures | logins/s | /callback p50 ms "
              "| /callback p99 ms | baa's connections | full handshakes / login "
              "| resumed / login | baa CPU ms / login |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            n = max(r["logins"], 1)
            print("| %s | %d | %d | %.0f | %.2f | %.2f | %d | %.2f | %.2f | %.2f |" % (
                r["mode"], r["logins"], r["failures"], r["rate"], r["p50"], r["p99"],
                r["connections"], r["full"] / n, r["resumed"] / n, r["cpu_ms"]))
        print("\n- %d logins per row from %d clients at once, 2 calls to the stand-in per login "
              "(%s calls seen); 1 baa instance of %d workers behind the shipped nginx site; "
              "the stand-in is Python (HTTP/1.1, TLS 1.3, P-256 certificate) on the same "
              "machine (`tests/load/handshake.py --logins %d --clients %d --workers %d`)" % (
                  args.logins // args.clients * args.clients, args.clients,
                  "/".join(str(r["calls"]) for r in rows), args.workers, args.logins,
                  args.clients, args.workers))
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
