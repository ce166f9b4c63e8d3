"""The workers' seccomp sandbox (src/sandbox.c): a worker held to its
allow-list that calls execve dies of it, says so in the log, and is
replaced; BAA_SANDBOX=off lets the same call through, which proves the
probe would catch a sandbox that let it pass. Logins, /me and a token
refresh work with the sandbox on (as the whole suite shows too).

The probe is no hook in baa: the test builds a small LD_PRELOAD library
that wraps libfcgi's FCGX_Accept_r, which a worker calls for every
request, and runs /usr/bin/touch MARKER by execve when the request's path
names the probe."""

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import unittest

from harness import (SESSION_COOKIE, BaaTestCase, SpotifyTestCase,
                     fake_spotify_certificates, make_temp_dir, read_text,
                     start_fake_spotify, wait_until)

PROBE_PATH = "/sandbox-probe-execve"

PROBE_SOURCE = textwrap.dedent(r"""
    #define _GNU_SOURCE
    #include <dlfcn.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    #include <fcgiapp.h>

    /* FCGX_Accept_r as libfcgi has it; then, for the probe's path, execve. */
    int
    FCGX_Accept_r(FCGX_Request *req)
    {
        static int (*real)(FCGX_Request *);
        const char *uri, *marker = getenv("BAA_IT_PROBE_MARKER");
        int rc;

        if (real == NULL)
            real = (int (*)(FCGX_Request *))dlsym(RTLD_NEXT, "FCGX_Accept_r");
        rc = real(req);
        uri = rc == 0 ? FCGX_GetParam("REQUEST_URI", req->envp) : NULL;
        if (marker && uri && strstr(uri, "%s")) {
            char *argv[] = {"touch", (char *)marker, NULL};
            char *envp[] = {NULL};
            execve("/usr/bin/touch", argv, envp);
        }
        return rc;
    }
""" % PROBE_PATH)


def build_probe():
    """The probe library, in a directory BAA_USER can read."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise unittest.SkipTest("no C compiler for the probe library")
    d = make_temp_dir("baa-it-probe-")
    src, lib = os.path.join(d, "probe.c"), os.path.join(d, "probe.so")
    with open(src, "w") as f:
        f.write(PROBE_SOURCE)
    res = subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src, "-ldl"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if res.returncode != 0:
        raise AssertionError("building the probe failed:\n%s" % res.stderr)
    os.chmod(lib, 0o755)
    return lib


def seccomp_mode(pid):
    """/proc/PID/status's Seccomp: 0 none, 2 a filter."""
    for line in read_text("/proc/%d/status" % pid).splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    return None


class SandboxTest(BaaTestCase):
    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.probe = build_probe()

    def start_probed(self, **extra):
        self.marker = os.path.join(make_temp_dir("baa-it-marker-"), "execve-ran")
        env = self.env(LD_PRELOAD=self.probe, BAA_IT_PROBE_MARKER=self.marker, **extra)
        if "ASAN_OPTIONS" in env:
            env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
        return self.start_stack(env)

    def probe_a_worker(self, baa, nginx):
        """Sends the probe's request; -> the workers before it."""
        before = baa.workers()
        self.assertEqual(len(before), self.workers)
        status, _, _ = nginx.request("GET", PROBE_PATH)
        # The worker that took it is gone either way: nginx answers 502.
        self.assertEqual(status, 502)
        return before

    def assertReplaced(self, baa, nginx, before):
        def replaced():
            now = baa.workers()
            return len(now) == self.workers and set(now) != set(before)
        wait_until(replaced, 15, message="the probed worker was not replaced: before=%r now=%r\n%s"
                   % (before, baa.workers(), baa.log()[-2000:]))
        for _ in range(4):
            self.get_json(nginx, "/healthz", expect=200)

    def test_workers_run_under_a_seccomp_filter_and_the_master_does_not(self):
        baa, nginx = self.start_stack()
        self.get_json(nginx, "/healthz", expect=200)
        for pid in baa.workers():
            self.assertEqual(seccomp_mode(pid), 2, "worker %d has no seccomp filter" % pid)
        # The master forks and supervises: it is not held to a worker's list.
        self.assertEqual(seccomp_mode(baa.pid), 0)
        self.assertNotIn("event=sandbox_off", baa.log())

    def test_a_worker_that_calls_execve_dies_of_it_and_is_replaced(self):
        baa, nginx = self.start_probed()
        before = self.probe_a_worker(baa, nginx)
        self.assertReplaced(baa, nginx, before)
        self.assertFalse(os.path.exists(self.marker), "execve ran inside the sandbox")
        records = baa.log_records()
        violations = [r for r in records if r.get("event") == "sandbox_violation"]
        self.assertEqual(len(violations), 1, baa.log()[-3000:])
        self.assertEqual(violations[0].get("name"), "execve", violations[0])
        self.assertEqual(violations[0].get("level"), "error", violations[0])
        dead = int(violations[0]["pid"])
        self.assertIn(dead, before)
        exits = [r for r in records if r.get("event") == "worker_exited"]
        self.assertEqual(len(exits), 1, baa.log()[-3000:])
        self.assertEqual(exits[0].get("pid"), str(dead), exits[0])
        self.assertEqual(exits[0].get("signal"), str(int(signal.SIGSYS)), exits[0])
        self.assertEqual(exits[0].get("cause"), "sandbox_violation", exits[0])
        for pid in baa.workers():
            self.assertEqual(seccomp_mode(pid), 2, "replacement %d has no filter" % pid)

    def test_with_the_sandbox_off_the_same_execve_goes_through(self):
        baa, nginx = self.start_probed(BAA_SANDBOX="off")
        for pid in baa.workers():
            self.assertEqual(seccomp_mode(pid), 0)
        before = self.probe_a_worker(baa, nginx)
        wait_until(lambda: os.path.exists(self.marker), 10,
                   message="the probe's execve did not run with BAA_SANDBOX=off")
        self.assertReplaced(baa, nginx, before)
        self.assertNotIn("event=sandbox_violation", baa.log())
        self.assertEqual(baa.log().count("event=sandbox_off"), 1, baa.log()[-3000:])

    def test_an_invalid_baa_sandbox_is_a_configuration_error(self):
        res = self.run_baa(["serve"], self.env(BAA_SANDBOX="maybe"), timeout=10)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("Environment variable 'BAA_SANDBOX' must be 'on' or 'off'.", res.stderr)


def loopback_host_name():
    """A name other than localhost (which libcurl answers itself) that this
    machine resolves to 127.0.0.1 only, from /etc/hosts: its host name,
    usually. None when there is no such name."""
    name = socket.gethostname()
    try:
        found = {a[4][0] for a in socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)}
    except OSError:
        return None
    return name if name != "localhost" and found == {"127.0.0.1"} else None


class SandboxedLoginTest(SpotifyTestCase):
    """A login over HTTPS to the fake Spotify, /me, a token refresh and a
    reconnect after PostgreSQL restarts, all from a sandboxed worker.

    The fake is reached by a host name where the machine has one for
    127.0.0.1, as Spotify is by api.spotify.com: libcurl then resolves it
    in a thread of its own (Debian's libcurl has the threaded resolver),
    and getaddrinfo reads /etc/hosts, /etc/resolv.conf and nsswitch's
    modules, all of which the worker must be allowed."""

    workers = 1
    class_stack = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.host = loopback_host_name()
        if cls.host:
            ca = fake_spotify_certificates().ca
            cert, key = ca.issue("sandbox-" + cls.host,
                                 names=["DNS:" + cls.host, "IP:127.0.0.1"])
            cls.fake.stop()
            cls.fake = start_fake_spotify(tls_cert=cert, tls_key=key, ca_file=ca.ca_file)
            cls.addClassCleanup(cls.fake.stop)
        cls.baa, cls.nginx = cls.start_class_stack(cls.login_env())

    @classmethod
    def login_env(cls, **extra):
        env = super().login_env(**extra)
        if cls.host:
            for name in ("SPOTIFY_ACCOUNTS_URL", "SPOTIFY_API_URL"):
                env[name] = env[name].replace("//127.0.0.1:", "//%s:" % cls.host)
        return env

    def test_login_me_refresh_and_reconnect_work_in_the_sandbox(self):
        self.assertEqual(seccomp_mode(self.baa.workers()[0]), 2)
        self.fake.configure(expires_in=30)
        b, r = self.login()
        self.fake.configure(expires_in=3600)
        resp = b.get("/me", cookies={SESSION_COOKIE: r.session_cookie})
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        resp = b.get("/me/token", cookies={SESSION_COOKIE: r.session_cookie})
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1, self.stack_context())
        self.pg.stop(mode="fast")
        self.pg.start()
        wait_until(lambda: self.nginx.request("GET", "/readyz")[0] == 200, 15,
                   message="no reconnect to PostgreSQL%s" % self.stack_context())
        resp = b.get("/me", cookies={SESSION_COOKIE: r.session_cookie})
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertNotIn("event=sandbox_violation", self.baa.log())
        self.assertNotIn("event=worker_exited", self.baa.log())
