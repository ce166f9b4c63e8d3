"""Several hosts: each `baa serve` instance in its own network namespace,
nginx in front on the host, PostgreSQL reached over the namespaces' network;
cutting one instance's link under load loses no request.

The network, made per run and removed after it (even on failure):

    host                                       namespace A (baa-it-<pid>-a)
    bridge baabr<pid>  10.213.X.1/24 ---veth--- 10.213.X.11   baa serve :8080
      PostgreSQL (this test's own cluster)      namespace B (baa-it-<pid>-b)
      on 127.0.0.1 and 10.213.X.1     ---veth--- 10.213.X.12   baa serve :8080
    nginx (the shipped site, rendered by scripts/render-nginx with the
    upstreams 10.213.X.11:8080 and 10.213.X.12:8080) on 127.0.0.1

X is picked at random among the /24s of 10.213.0.0/16 unused on the machine;
IPv6 is off on these links. Traffic is between these addresses and loopback
only: nothing in the test addresses anything else (and a host that does not
forward, as the test machine, would not route it out of the bridge anyway).

PostgreSQL: a cluster of this test's own (harness.PostgresCluster, its own
data directory and port) listening on 127.0.0.1 and the bridge address, with
a pg_hba.conf line for the /24. Not the shared cluster: changing its
listen_addresses needs a restart that other tests' connections would see. Not
a TCP forwarder in this process either: the namespaces then talk to a Python
thread, not to PostgreSQL, and the thread (its GIL, its handling of half-closed
and cut connections) would be part of what the test measures.

The load: wrk -t2 -c8 --timeout 20s on GET /me (a user inserted by SQL, a
session cookie signed here), and A's link cut 2s in, with at least one
request in flight on A: A's workers are paused (SIGSTOP) for the fraction of
a millisecond it takes nginx to send A a request (on a kept connection or a
new one), the link goes, the
workers go on (SIGCONT) and answer into the dead link. (By chance alone that
happens in about half of the runs.) nginx must answer every request 200 all
the same: a connect to A times out (fastcgi_connect_timeout) and is passed
to B; a request caught on A waits fastcgi_read_timeout and must then be
passed to B. wrk runs 20s, not less: it stops at its -d and does not count
what is still in flight then (nginx logs it 499), so a shorter run would not
see the fate of a request that waits the read timeout; nginx's access
log is checked as well, for exactly that. Then A's link comes back and A
serves again.

Needs root and iproute2 (`ip netns`); skipped, with the reason, when network
namespaces cannot be made. Set BAA_IT_VERBOSE=1 to print the load run's
numbers (requests, max latency, what nginx retried) to stderr.
"""

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

from harness import (WRK_COUNT_LUA, parse_wrk_count, SESSION_COOKIE, Baa, HarnessError, PostgresCluster,
                     SiteNginx, clean_env, db_env, kill_process_tree, make_temp_dir, read_text,
                     mint_session, register_cleanup, register_process, require_baa, serve_env, spotify_env, wait_until)
from harness.tags import slow

IP = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
                                 if os.path.exists(p)), None)
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SYSCTL = shutil.which("sysctl") or ("/usr/sbin/sysctl" if os.path.exists("/usr/sbin/sysctl") else None)
PYTHON = sys.executable or "/usr/bin/python3"

BAA_PORT = 8080          # the same in each namespace: each has its own ports
WORKERS = 2
CUT_AFTER = 2.0          # seconds into the load run when A's link goes down
# Long enough that a request caught on A by the cut, which nginx gives up on
# only after fastcgi_read_timeout and a connect to B, ends while wrk still
# counts: wrk stops at its -d and drops what is in flight, whatever --timeout
# says. (Checked against the rendered site in the test.)
WRK_SECONDS = 20
WRK_TIMEOUT = "20s"
VERBOSE = bool(os.environ.get("BAA_IT_VERBOSE"))

def run(argv, timeout=20, check=True, **kw):
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise HarnessError("%s failed (%d): %s%s" % (" ".join(argv), res.returncode, res.stdout, res.stderr))
    return res


def set_link_up(ifname, up):
    """`ip link set IFNAME up|down`, done here with one rtnetlink request
    (RTM_NEWLINK changing IFF_UP): no fork and exec at the moment of a cut."""
    iff_up, rtm_newlink, nlm_f_request, nlm_f_ack, nlmsg_error = 1, 16, 1, 4, 2
    ifinfo = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, socket.if_nametoindex(ifname),
                         iff_up if up else 0, iff_up)
    msg = struct.pack("=IHHII", 16 + len(ifinfo), rtm_newlink, nlm_f_request | nlm_f_ack, 1, 0) + ifinfo
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.bind((0, 0))
        s.sendto(msg, (0, 0))
        reply = s.recv(65536)
    if struct.unpack("=H", reply[4:6])[0] == nlmsg_error:
        err = struct.unpack("=i", reply[16:20])[0]
        if err:
            raise OSError(-err, "setting %s %s: %s" % (ifname, "up" if up else "down", os.strerror(-err)))


def requests_waiting(pid, port):
    """Requests waiting at the TCP server on `port` in the network namespace
    of process pid: connections in its listener's accept queue, plus kept
    connections holding unread bytes (a request nginx sent on them), from
    /proc/PID/net/tcp (the rx_queue of LISTEN and ESTABLISHED lines)."""
    waiting = 0
    try:
        with open("/proc/%d/net/tcp" % pid) as f:
            f.readline()
            for line in f:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) != port:
                    continue
                rx = int(parts[4].split(":")[1], 16)
                if parts[3] == "0A":
                    waiting += rx
                elif parts[3] == "01" and rx > 0:
                    waiting += 1
    except OSError:
        pass
    return waiting


class NamespacesUnavailable(Exception):
    pass


class HostNetwork:
    """Two network namespaces on a bridge of the host, made and removed with `ip`.

    teardown() is idempotent and removes only what this object made."""

    def __init__(self, names=("a", "b")):
        tag = "%x" % os.getpid()
        self.bridge = "baabr" + tag
        self.subnet = self._free_subnet()
        self.gateway = "%s.1" % self.subnet
        self.hosts = {}  # name -> dict(ns, addr, host_if, ns_if)
        for i, name in enumerate(names):
            self.hosts[name] = {"ns": "baa-it-%d-%s" % (os.getpid(), name),
                                "addr": "%s.%d" % (self.subnet, 11 + i),
                                "host_if": "baav%s%s" % (tag, name),
                                "ns_if": "baan%s%s" % (tag, name)}
        self._made = []  # (kind, name), in order of creation

    @staticmethod
    def _free_subnet():
        used = run([IP, "-4", "-o", "addr", "show"]).stdout + run([IP, "-4", "route", "show", "table", "all"]).stdout
        free = [x for x in range(1, 255) if "10.213.%d." % x not in used]
        if not free:
            raise HarnessError("no free /24 in 10.213.0.0/16")
        return "10.213.%d" % random.choice(free)

    # -- make ------------------------------------------------------------------
    def create(self):
        for h in self.hosts.values():
            res = run([IP, "netns", "add", h["ns"]], check=False)
            if res.returncode != 0:
                raise NamespacesUnavailable("`ip netns add` refused: %s" % (res.stderr.strip() or res.returncode))
            self._made.append(("netns", h["ns"]))
            # Only IPv4 on these links: no IPv6 link-local chatter.
            if SYSCTL:
                run([IP, "netns", "exec", h["ns"], SYSCTL, "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        run([IP, "link", "add", self.bridge, "type", "bridge", "forward_delay", "0"])
        self._made.append(("link", self.bridge))
        self._no_ipv6(self.bridge)
        run([IP, "addr", "add", self.gateway + "/24", "dev", self.bridge])
        run([IP, "link", "set", self.bridge, "up"])
        for h in self.hosts.values():
            run([IP, "link", "add", h["host_if"], "type", "veth", "peer", "name", h["ns_if"]])
            self._made.append(("link", h["host_if"]))  # deleting one end deletes the pair
            self._no_ipv6(h["host_if"])
            run([IP, "link", "set", h["ns_if"], "netns", h["ns"]])
            run([IP, "link", "set", h["host_if"], "master", self.bridge])
            run([IP, "link", "set", h["host_if"], "up"])
            ns = [IP, "-n", h["ns"]]
            run(ns + ["link", "set", "lo", "up"])
            run(ns + ["addr", "add", h["addr"] + "/24", "dev", h["ns_if"]])
            run(ns + ["link", "set", h["ns_if"], "up"])
            run(ns + ["route", "add", "default", "via", self.gateway])
        return self

    @staticmethod
    def _no_ipv6(ifname):
        try:
            with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % ifname, "w") as f:
                f.write("1")
        except OSError:
            pass

    # -- use -------------------------------------------------------------------
    def exec_argv(self, name, argv):
        return [IP, "netns", "exec", self.hosts[name]["ns"]] + list(argv)

    def can_connect(self, name, host, port, timeout=1.0):
        code = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), %s).close()" % timeout
        res = run(self.exec_argv(name, [PYTHON, "-c", code, host, str(port)]), timeout=timeout + 10, check=False)
        return res.returncode == 0

    def set_link(self, name, up):
        """The host end of the namespace's veth, as a switch port: down cuts
        the namespace off the bridge (the namespace end loses its carrier)."""
        set_link_up(self.hosts[name]["host_if"], up)

    def describe(self):
        out = []
        for argv in ([IP, "-br", "link", "show", "master", self.bridge], [IP, "-br", "addr", "show", self.bridge]):
            out.append(run(argv, check=False).stdout.strip())
        for h in self.hosts.values():
            out.append("%s: %s" % (h["ns"], run([IP, "-n", h["ns"], "-br", "addr"], check=False).stdout.strip()))
        return "\n".join(out)

    # -- remove ----------------------------------------------------------------
    def teardown(self):
        errors = []
        while self._made:
            kind, name = self._made.pop()
            argv = [IP, "netns", "del", name] if kind == "netns" else [IP, "link", "del", name]
            res = run(argv, check=False)
            if res.returncode != 0 and "Cannot find" not in res.stderr and "No such" not in res.stderr:
                errors.append("%s: %s" % (" ".join(argv), res.stderr.strip()))
        if errors:
            raise HarnessError("network teardown: " + "; ".join(errors))


def namespaces_unavailable():
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if IP is None:
        return "no `ip` (iproute2) on this machine"
    return None


class NsBaa(Baa):
    """`baa serve` run inside a network namespace (`ip netns exec` execs baa:
    the process is baa's master itself, its children the workers)."""

    def __init__(self, net, name, tmpdir):
        super().__init__(tmpdir)
        self.net = net
        self.name = name

    def serve(self, env, wait_listening=True, timeout=15, umask=None):
        env = serve_env(env)
        self.env = env
        self.logpath = os.path.join(self.tmpdir, "baa-serve-%s.log" % self.name)
        self._logf = open(self.logpath, "wb")
        self.proc = register_process(subprocess.Popen(
            self.net.exec_argv(self.name, [self.bin, "serve"]), env=env, stdin=subprocess.DEVNULL,
            stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.tmpdir, start_new_session=True))
        if wait_listening:
            self.wait_listening(timeout)
        return self


@slow("instances on several hosts (network namespaces), a link cut under load")
class HostsTest(unittest.TestCase):
    """Two baa instances on two "hosts" (network namespaces) behind the shipped nginx site."""

    db = "baa_it_hosts"

    def setUp(self):
        reason = namespaces_unavailable()
        if reason:
            self.skipTest(reason)
        require_baa()
        self.t_start = time.monotonic()

        # the network
        self.net = HostNetwork()
        register_cleanup(self.net.teardown)  # also on an interrupted run
        self.addCleanup(self.net.teardown)   # runs last: after every process in it is gone
        try:
            self.net.create()
        except NamespacesUnavailable as exc:
            self.skipTest(str(exc))
        self.a, self.b = self.net.hosts["a"], self.net.hosts["b"]

        # PostgreSQL on the host, listening on the bridge address too
        self.pg = PostgresCluster()
        self.pg.init()
        with open(os.path.join(self.pg.datadir, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '%s'\n" % ",".join(
                ["127.0.0.1", self.net.gateway] + (["::1"] if self.pg.listen_ipv6 else [])))
        with open(os.path.join(self.pg.datadir, "pg_hba.conf"), "a") as f:
            f.write("host all all %s.0/24 scram-sha-256\n" % self.net.subnet)
        self.addCleanup(self.pg._cleanup)
        self.pg.start()
        for name in ("a", "b"):
            wait_until(lambda: self.net.can_connect(name, self.net.gateway, self.pg.port), 10, interval=0.1,
                       message="namespace %s cannot reach PostgreSQL at %s:%d\n%s" % (
                           name, self.net.gateway, self.pg.port, self.net.describe()))

        # baa in each namespace; the schema made from namespace A, over the bridge
        env = clean_env()
        env.update(db_env(self.db, url="%s:%d" % (self.net.gateway, self.pg.port), pg=self.pg))
        # Across a network baa wants TLS settings; this bridge is the test's
        # own private network and its cluster has no TLS: said explicitly.
        env["POSTGRES_SSLMODE"] = "disable"
        env.update(spotify_env())
        env["BAA_WORKERS"] = str(WORKERS)
        tmp = make_temp_dir("baa-it-hosts-")
        res = run(self.net.exec_argv("a", [require_baa(), "resetdb"]), timeout=60, check=False, env=env, cwd=tmp)
        self.assertEqual(res.returncode, 0, "baa resetdb from namespace a:\n%s%s" % (res.stdout, res.stderr))
        self.baa = {}
        for name, h in self.net.hosts.items():
            b = NsBaa(self.net, name, tmp)
            self.addCleanup(b.stop)
            b.serve(dict(env, BAA_LISTEN="%s:%d" % (h["addr"], BAA_PORT)))
            self.baa[name] = b

        # nginx on the host
        self.nginx = SiteNginx(["%s:%d" % (self.a["addr"], BAA_PORT), "%s:%d" % (self.b["addr"], BAA_PORT)])
        self.addCleanup(self.nginx.stop)
        self.nginx.start()

        # a user, and a session of it: its row, and the cookie signed here
        row = self.pg.psql_rows(
            "INSERT INTO users (spotify_id, display_name, spotify_token) "
            "VALUES ('hosts-user', 'Hosts User', 'tok-hosts') RETURNING id", db=self.db)
        self.user_id = int(row[0][0])
        cookie = mint_session(self.pg, self.db, self.user_id)
        self.cookie_header = "%s=%s" % (SESSION_COOKIE, cookie)
        self.setup_seconds = time.monotonic() - self.t_start

    # -- helpers -----------------------------------------------------------------
    def me(self, timeout=10):
        return self.nginx.get("/me", headers={"Cookie": self.cookie_header}, timeout=timeout)

    def context(self):
        text = "\n--- network ---\n%s" % self.net.describe()
        text += "\n--- nginx error log (tail) ---\n%s" % self.nginx.error_log()[-3000:]
        for name, b in self.baa.items():
            text += "\n--- baa %s log (tail) ---\n%s" % (name, b.log()[-1500:])
        return text

    def workers_state(self, name):
        """What each worker of an instance is doing (system call, kernel wait) and
        the connections on its FastCGI port, for failure messages."""
        lines = []
        for pid in self.baa[name].workers():
            syscall = read_text("/proc/%d/syscall" % pid).split()[:1]
            lines.append("worker %d: syscall %s (0 = read, 232/281 = epoll_wait), wchan %s" % (
                pid, syscall[0] if syscall else "?", read_text("/proc/%d/wchan" % pid) or "?"))
        res = run(self.net.exec_argv(name, ["ss", "-tnpi", "sport", "=", ":%d" % BAA_PORT]), check=False)
        return "\n".join(lines) + "\n" + res.stdout + res.stderr

    def wrk(self, seconds):
        argv = [WRK, "-t2", "-c8", "-d%ds" % seconds, "--timeout", WRK_TIMEOUT, "-s", WRK_COUNT_LUA,
                "-H", "Cookie: " + self.cookie_header, "https://127.0.0.1:%d/me" % self.nginx.https_port]
        proc = register_process(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True, start_new_session=True))
        self.addCleanup(kill_process_tree, proc)
        return proc

    @staticmethod
    def realtime():
        """SCHED_FIFO for this thread if allowed; returns the function that restores the policy."""
        try:
            policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except (AttributeError, OSError):
            return lambda: None
        return lambda: os.sched_setscheduler(0, policy, param)

    @staticmethod
    def wrk_result(proc, seconds):
        try:
            out, err = proc.communicate(timeout=seconds + 15)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc)
            out, err = proc.communicate()
            raise AssertionError("wrk did not finish in time:\n%s%s" % (out, err))
        stats = parse_wrk_count(out)
        if proc.returncode != 0 or stats is None:
            raise AssertionError("wrk failed (%s):\n%s%s" % (proc.returncode, out, err))
        return stats, out + err

    # -- the test ------------------------------------------------------------------
    def test_cutting_one_hosts_link_under_load_loses_no_request(self):
        nginx = self.nginx
        a_up = "%s:%d" % (self.a["addr"], BAA_PORT)
        fail_timeout = nginx.setting("fail_timeout", 10)
        worst = CUT_AFTER + nginx.setting("fastcgi_read_timeout", 60) + nginx.setting("fastcgi_connect_timeout", 60)
        self.assertLess(worst + 2, WRK_SECONDS, "the load run is too short to see a request that waits "
                        "fastcgi_read_timeout and a connect to B end")

        # 1. /me through nginx is 200, and both hosts serve it
        before = {i: nginx.counter(i) for i in (1, 2)}
        self.assertNotIn(None, before.values(), "/metrics/1 or /metrics/2 did not answer" + self.context())
        for _ in range(20):
            status, _, body = self.me()
            self.assertEqual(status, 200, "%r%s" % (body[:300], self.context()))
        doc = json.loads(body.decode())
        self.assertEqual((doc.get("id"), doc.get("spotify_id")), (self.user_id, "hosts-user"), doc)
        served = {i: nginx.counter(i) - before[i] for i in (1, 2)}
        self.assertEqual(sum(served.values()), 20, served)
        self.assertTrue(served[1] > 0 and served[2] > 0, "one host served nothing: %r" % served)
        workers_a = self.baa["a"].workers()
        self.assertEqual(len(workers_a), WORKERS)

        # 2. load, and A's link cut CUT_AFTER seconds into it, with a request
        # in flight on A (see the module's docstring). Real-time priority for
        # that moment keeps it well under a millisecond on a busy machine:
        # every request nginx hands A meanwhile is caught, and if all of
        # wrk's connections were, there would be no load left to speak of.
        wrk = self.wrk(WRK_SECONDS)
        t0 = time.monotonic()
        time.sleep(CUT_AFTER)
        a_pid = self.baa["a"].pid
        restore = self.realtime()
        try:
            paused = time.monotonic()
            for pid in workers_a:
                os.kill(pid, signal.SIGSTOP)
            try:
                while not requests_waiting(a_pid, BAA_PORT) and time.monotonic() < paused + 1:
                    time.sleep(0.0001)
                self.net.set_link("a", up=False)
                window = time.monotonic() - paused
                in_flight = requests_waiting(a_pid, BAA_PORT)
            finally:
                for pid in workers_a:
                    os.kill(pid, signal.SIGCONT)
        finally:
            restore()
        cut_at = time.monotonic() - t0
        stats, wrk_out = self.wrk_result(wrk, WRK_SECONDS)

        me_log = nginx.access_records(uri="/me")
        retried = [r for r in me_log if len(r.upstreams) > 1]
        # wrk closes its connections when its run ends, and nginx logs what
        # was still in flight then as 499. One that had waited less than a
        # connect plus a read timeout may just have been nginx trying A again
        # (after fail_timeout) late in the run: its failover had not had the
        # time to happen, which says nothing of the cut. One caught by the
        # cut itself had waited since then, much longer.
        failover_time = nginx.setting("fastcgi_connect_timeout", 60) + nginx.setting("fastcgi_read_timeout", 60)
        failed_on_a = [(r.status, r.seconds, r.upstreams) for r in me_log
                       if r.upstreams and r.upstreams[-1] == a_up and r.status != 200
                       and not (r.status == 499 and r.seconds < failover_time)]
        slowest = [(r.status, r.seconds, r.upstreams) for r in sorted(me_log, key=lambda r: -r.seconds)[:3]]
        events = nginx.upstream_errors()
        read_timeouts = events.get("upstream timed out while reading response header from upstream", 0)
        connect_timeouts = events.get("upstream timed out while connecting to upstream", 0)
        summary = ("A's link cut %.1fs into a %ds run with %d request(s) waiting on A (workers paused %.1fms); "
                   "wrk: %d requests, max latency %.3fs, errors connect=%d read=%d write=%d timeout=%d, "
                   "non-200 %d %s; nginx: %d read timeouts, %d connect timeouts, %d requests passed to B after "
                   "A failed, slowest (status, seconds, upstreams) %r, upstream errors %r" % (
                       cut_at, WRK_SECONDS, in_flight, window * 1000, stats["requests"], stats["max_us"] / 1e6,
                       stats["connect"], stats["read"], stats["write"], stats["timeout"], stats["non200"],
                       stats["seen"], read_timeouts, connect_timeouts, len(retried), slowest, events))
        if VERBOSE:
            sys.stderr.write("\nhosts: %s\n" % summary)
        what = "%s\n--- wrk ---\n%s%s" % (summary, wrk_out, self.context())
        if read_timeouts and any(r[0] == 504 for r in failed_on_a):
            what = ("nginx gave up on request(s) in flight on A after fastcgi_read_timeout (%ss) and answered "
                    "504 instead of passing them to B: fastcgi_next_upstream_timeout (%ss) had run out.\n%s" % (
                        nginx.setting("fastcgi_read_timeout"), nginx.setting("fastcgi_next_upstream_timeout"),
                        what))
        self.assertGreater(in_flight, 0, "no request was waiting on A when its link was cut\n" + what)
        self.assertNotIn("Non-2xx or 3xx responses", wrk_out, what)
        # Every request A had not started to answer is passed to B. One whose
        # response header had already reached nginx when the link went down
        # cannot be: nginx has forwarded that header to the client, and
        # closes the client's connection when the rest never comes (wrk: a
        # read error; nginx: "timed out ... while reading upstream", the
        # request logged 200 from A after fastcgi_read_timeout). Seen about
        # once in 25 runs; any other loss fails the test.
        cut_mid_response = events.get("upstream timed out while reading upstream", 0)
        self.assertLessEqual(stats["read"], cut_mid_response,
                             "wrk read errors not explained by responses cut mid-way\n" + what)
        for k in ("connect", "write", "timeout", "status", "non200"):
            self.assertEqual(stats[k], 0, "wrk %s=%s\n%s" % (k, stats[k], what))
        # also what wrk cannot see: a request it gave up on when its run ended (nginx logs 499)
        self.assertEqual(failed_on_a, [], "requests on A not answered 200\n" + what)
        self.assertGreater(stats["requests"], 1000, "hardly any load was made\n" + what)
        self.assertGreater(len(retried), 0, "no request was passed from A to B\n" + what)

        # 3. A's link back: A serves again, within fail_timeout (before nginx
        # tries A again) and a few seconds. The few: a worker of A that took
        # a connection whose request the cut held back sits in read() until
        # nginx's TCP retransmits it, or BAA_IO_TIMEOUT (10 s) drops it.
        self.net.set_link("a", up=True)
        up_at = time.monotonic()
        limit = fail_timeout + 8
        a_before, samples, back_after = None, [], None
        while back_after is None and time.monotonic() < up_at + limit:
            if a_before is None:
                # what A counted before the cut (/metrics/1 reaches A alone: never passed to B)
                a_before = nginx.counter(1, timeout=limit)
                continue
            for _ in range(4):
                status = self.me(timeout=limit)[0]
                self.assertEqual(status, 200, "GET /me after A's link came back" + self.context())
            count = nginx.counter(1, timeout=limit)
            samples.append((round(time.monotonic() - up_at, 2), count))
            if count is not None and count > a_before:
                back_after = time.monotonic() - up_at
            else:
                time.sleep(0.2)
        if back_after is None:
            self.fail("A served no /me within %ss of its link coming back (its count before: %r; seconds after, "
                      "count: %r)\n--- A's workers ---\n%s%s" % (limit, a_before, samples, self.workers_state("a"),
                                                              self.context()))
        self.assertEqual(self.baa["a"].workers(), workers_a, "A's workers died or were replaced" + self.context())
        if VERBOSE:
            sys.stderr.write("hosts: A served /me again %.1fs after its link came back; setup %.1fs, "
                             "whole test %.1fs\n" % (back_after, self.setup_seconds,
                                                     time.monotonic() - self.t_start))


if __name__ == "__main__":
    unittest.main()
