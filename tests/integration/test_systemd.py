"""baa's units under a real systemd: a Debian 12 root with baa installed,
booted by systemd-nspawn (harness/nspawn.py), the units started, reloaded
and stopped with systemctl, nginx on the host in front of the instances'
sockets (the container's /run/baa is a folder of the test's), PostgreSQL
and the fake Spotify on the host's loopback.

What only a running systemd shows: that `systemctl start baa@1` returns
once the socket answers (Type=notify, READY=1), that the sandbox of the
unit lets the workers live (a filter that kills them shows as restarts),
that the process really runs with no privileges, no capabilities and both
seccomp filters (systemd's and the worker's own), that baa-migrate ran
first, that the journal keeps each line's level from its <N> prefix, that
`systemctl reload` returns once the new workers serve and the old are
gone, that a stop is clean, and that the secrets can come as credentials
(LoadCredential=) and then are not in the process's environment.
"""

import json
import os
import re
import unittest

from harness import (BootedRoot, Browser, Nginx, SpotifyTestCase, installed_root,
                     make_temp_dir, nspawn_available, root_only, slow)


def status_fields(pid):
    """/proc/PID/status as a dict; {} once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    except OSError:
        return {}


def children(pid):
    return {int(p) for p in os.listdir("/proc")
            if p.isdigit() and status_fields(int(p)).get("PPid", "").strip() == str(pid)}


@slow("installs the package (built once a run) into a Debian root and boots it under "
      "systemd-nspawn: about 40 s")
@root_only("systemd-nspawn and nsenter need root")
@unittest.skipIf(os.environ.get("SANITIZER_LOG_DIR"),
                 "the package is built from the tree, not from the binary under test: "
                 "the normal round covers it")
class SystemdUnitsTest(SpotifyTestCase):
    class_stack = False
    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not nspawn_available():
            raise AssertionError("systemd-nspawn is missing: apt-get install systemd-container "
                                 "(scripts/setup-debian)")
        work = make_temp_dir("baa-it-systemd-")
        cls.root = installed_root(os.path.join(work, "root"))
        cls.env_file = os.path.join(cls.root.path, cls.root.env_file.lstrip("/"))
        cls.sockets = os.path.join(work, "run-baa")
        os.mkdir(cls.sockets)
        os.chmod(cls.sockets, 0o755)
        cls.write_env_file()
        cls.machine = BootedRoot(cls.root.path, binds=[(cls.sockets, "/run/baa")])
        cls.machine.boot()
        cls.addClassCleanup(cls.machine.poweroff)
        cls.nginx = {}

    @classmethod
    def write_env_file(cls, without=()):
        """The operator's baa.env: the settings of login_env, the fake's CA
        copied into the root's /etc/baa."""
        env = cls.login_env()
        ca_inside = os.path.join(os.path.dirname(cls.root.env_file), "spotify-ca.pem")
        with open(env["SPOTIFY_CA_FILE"], "rb") as src, \
                open(os.path.join(cls.root.path, ca_inside.lstrip("/")), "wb") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(cls.root.path, ca_inside.lstrip("/")), 0o644)
        env["SPOTIFY_CA_FILE"] = ca_inside
        names = [k for k in env if k.startswith(("POSTGRES_", "SPOTIFY_", "BAA_"))
                 and k not in ("BAA_LISTEN", "BAA_USER", "BAA_INSTANCE") and k not in without]
        with open(cls.env_file, "w") as f:
            f.write("".join("%s=%s\n" % (k, env[k]) for k in sorted(names)))
        os.chmod(cls.env_file, 0o600)
        return env

    def front(self, instance):
        """nginx on the host in front of instance's socket."""
        if instance not in self.nginx:
            n = Nginx("unix:%s/%s/baa.sock" % (self.sockets, instance))
            self.addClassCleanup(n.stop)
            n.start()
            self.nginx[instance] = n
        return self.nginx[instance]

    def start(self, instance):
        res = self.machine.run("systemctl start baa@%s" % instance, timeout=60, check=False)
        if res.returncode != 0:
            self.fail("systemctl start baa@%s: %s\n%s" % (instance, res.stderr, self.machine.run(
                "journalctl --no-pager -n 40 -u baa-migrate -u baa@%s" % instance,
                check=False).stdout))
        self.addCleanup(self.machine.run, "systemctl stop baa@%s" % instance, 60, False)

    def main_pid(self, unit):
        pid = int(self.machine.show(unit, "MainPID")["MainPID"])
        self.assertGreater(pid, 0, "%s has no main process" % unit)
        return self.machine.host_pid(pid)

    def journal(self, unit):
        """The journal's entries of the unit's current run."""
        invocation = self.machine.show(unit, "InvocationID")["InvocationID"]
        res = self.machine.run("journalctl _SYSTEMD_INVOCATION_ID=%s -o json --no-pager"
                               % invocation)
        return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]

    def test_start_returns_once_the_instance_serves_and_migrations_ran_first(self):
        self.start(1)
        # Type=notify: start returned after READY=1, so the socket is there.
        self.assertTrue(os.path.exists(os.path.join(self.sockets, "1", "baa.sock")))
        props = self.machine.show("baa@1", "ActiveState", "SubState", "NRestarts", "Type")
        self.assertEqual(props, {"ActiveState": "active", "SubState": "running",
                                 "NRestarts": "0", "Type": "notify"})
        migrate = self.machine.show("baa-migrate", "ActiveState", "Result")
        self.assertEqual(migrate, {"ActiveState": "active", "Result": "success"})
        nginx = self.front(1)
        status, _, body = nginx.request("GET", "/readyz")
        self.assertEqual(status, 200, body)
        browser = Browser(nginx.port)
        result = browser.login(self.fake)
        self.assertTrue(result.ok, result.describe())
        self.assertEqual(browser.get("/me").status, 200)

    def test_the_sandbox_holds_and_the_workers_live_in_it(self):
        self.start(1)
        nginx = self.front(1)
        self.assertEqual(nginx.request("GET", "/readyz")[0], 200)
        main = self.main_pid("baa@1")
        workers = children(main)
        self.assertEqual(len(workers), self.workers)
        for pid in [main] + sorted(workers):
            st = status_fields(pid)
            self.assertEqual(st["NoNewPrivs"].strip(), "1")
            self.assertEqual(st["Seccomp"].strip(), "2")
            self.assertEqual(int(st["CapEff"].strip(), 16), 0)
            self.assertEqual(int(st["CapBnd"].strip(), 16), 0)
        # Each worker adds its own filter on top of systemd's.
        for w in workers:
            self.assertGreater(int(status_fields(w)["Seccomp_filters"]),
                               int(status_fields(main)["Seccomp_filters"]))
        # No worker was killed and replaced.
        events = [e.get("MESSAGE", "") for e in self.journal("baa@1")]
        self.assertFalse([m for m in events if "event=worker_exited" in m], events[-20:])
        self.assertEqual(self.machine.show("baa@1", "NRestarts")["NRestarts"], "0")

    def test_the_journal_keeps_each_line_s_level(self):
        self.start(1)
        entries = self.journal("baa@1")
        listening = [e for e in entries if "event=listening" in e.get("MESSAGE", "")]
        self.assertTrue(listening, [e.get("MESSAGE") for e in entries])
        for e in entries:
            message = e.get("MESSAGE", "")
            m = re.search(r"\blevel=(\w+)", message)
            if not m:
                continue
            self.assertFalse(message.startswith("<"), message)
            self.assertEqual(e["PRIORITY"], {"debug": "7", "info": "6", "warn": "4",
                                             "error": "3"}[m.group(1)], message)

    def test_reload_returns_once_the_old_workers_are_gone(self):
        self.start(1)
        nginx = self.front(1)
        browser = Browser(nginx.port)
        self.assertTrue(browser.login(self.fake).ok)
        main = self.main_pid("baa@1")
        before = children(main)
        res = self.machine.run("systemctl reload baa@1", timeout=60, check=False)
        self.assertEqual(res.returncode, 0, res.stderr + self.machine.run(
            "systemctl status --no-pager -n 30 baa@1", check=False).stdout)
        after = children(main)
        self.assertEqual(len(after), self.workers)
        self.assertFalse(before & after, "an old worker outlived the reload")
        self.assertEqual(self.main_pid("baa@1"), main)
        self.assertEqual(browser.get("/me").status, 200)

    def test_stop_is_clean(self):
        self.start(1)
        self.machine.run("systemctl stop baa@1", timeout=60)
        props = self.machine.show("baa@1", "ActiveState", "Result", "ExecMainStatus")
        self.assertEqual(props, {"ActiveState": "inactive", "Result": "success",
                                 "ExecMainStatus": "0"})
        self.assertFalse(os.path.exists(os.path.join(self.sockets, "1", "baa.sock")))

    def test_secrets_as_credentials_stay_out_of_the_environment(self):
        env = self.write_env_file(without=("BAA_SECRET_KEY", "POSTGRES_PW"))
        self.addCleanup(self.write_env_file)
        secrets = {name: env[name] for name in ("BAA_SECRET_KEY", "POSTGRES_PW")}
        inside = os.path.join(os.path.dirname(self.root.env_file), "credentials")
        folder = os.path.join(self.root.path, inside.lstrip("/"))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        for name, value in secrets.items():
            with open(os.path.join(folder, name), "w") as f:
                f.write(value + "\n")
            os.chmod(os.path.join(folder, name), 0o600)
        dropin = os.path.join(self.root.path, "etc", "systemd", "system", "baa@2.service.d")
        os.makedirs(dropin, exist_ok=True)
        with open(os.path.join(dropin, "credentials.conf"), "w") as f:
            f.write("[Service]\n" + "".join(
                "LoadCredential=%s:%s/%s\n" % (n, inside, n) for n in secrets))
        self.addCleanup(os.unlink, os.path.join(dropin, "credentials.conf"))
        self.machine.run("systemctl daemon-reload")
        self.start(2)
        nginx = self.front(2)
        browser = Browser(nginx.port)
        result = browser.login(self.fake)
        self.assertTrue(result.ok, result.describe())
        self.assertEqual(browser.get("/me").status, 200)
        main = self.main_pid("baa@2")
        with open("/proc/%d/environ" % main, "rb") as f:
            environ = f.read().decode("utf-8", "replace")
        self.assertIn("CREDENTIALS_DIRECTORY=", environ)
        for value in secrets.values():
            self.assertNotIn(value, environ)
