"""A Debian root booted under its own systemd (systemd-nspawn -b), so that
baa's units run as systemd runs them: Type=notify, the sandbox, journald,
reloads. The machine that runs the tests need not have systemd as its init:
nspawn runs without the host's D-Bus or machined (--register=no,
--keep-unit), and commands reach the booted system through nsenter into
its PID 1's namespaces. The container shares the host's network (loopback
included), so it reaches the tests' PostgreSQL and fake Spotify; folders
bound in with binds= are how the host reaches its sockets."""

import os
import shutil
import subprocess

from .base import HarnessError, wait_until
from .processes import child_pids, kill_process_tree, register_cleanup, register_process


def nspawn_available():
    return shutil.which("systemd-nspawn") is not None and shutil.which("nsenter") is not None


class BootedRoot:
    def __init__(self, root, binds=(), log=None):
        self.root = root
        self.binds = list(binds)
        self.log = log or os.path.join(os.path.dirname(root.rstrip("/")), "nspawn.log")
        self.proc = None
        self.leader = None

    def boot(self, timeout=90):
        argv = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet",
                "--console=pipe", "-D", self.root, "-b"]
        argv += ["--bind=%s:%s" % pair for pair in self.binds]
        self._logf = open(self.log, "wb")
        self.proc = register_process(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
            start_new_session=True))
        register_cleanup(self.kill)

        def leader():
            if self.proc.poll() is not None:
                raise HarnessError("systemd-nspawn exited (%s):\n%s" % (
                    self.proc.returncode, open(self.log, errors="replace").read()[-3000:]))
            for pid in child_pids(self.proc.pid):
                try:
                    with open("/proc/%d/comm" % pid) as f:
                        if f.read().strip() == "systemd":
                            return pid
                except OSError:
                    pass
            return None
        self.leader = wait_until(leader, timeout, interval=0.1,
                                 message="no systemd inside systemd-nspawn")

        # running, or degraded (a unit of the minimal root failed): booted
        # either way. Until systemd listens, systemctl cannot ask it at all.
        def booted():
            res = self.run("systemctl is-system-running --wait", timeout=timeout, check=False)
            return res.stdout.strip() in ("running", "degraded")
        wait_until(booted, timeout, interval=0.2,
                   message="the container's systemd did not finish booting")
        return self

    def run(self, script, timeout=60, check=True):
        """script by /bin/sh inside the booted system (all of PID 1's
        namespaces, its root) -> CompletedProcess."""
        argv = ["nsenter", "-t", str(self.leader), "-a", "/usr/bin/env", "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "/bin/sh", "-c", script]
        res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise HarnessError("in the container (%d): %s\n%s\n%s" % (
                res.returncode, script, res.stdout[-3000:], res.stderr[-3000:]))
        return res

    def show(self, unit, *properties):
        """{property: value} of systemctl show."""
        res = self.run("systemctl show %s %s" % (
            unit, " ".join("-p " + p for p in properties)))
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def host_pid(self, container_pid):
        """The host's pid of a process the container knows as container_pid."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/status" % entry) as f:
                    status = f.read()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    if len(ids) == 2 and ids[1] == str(container_pid) and \
                            os.readlink("/proc/%s/ns/pid" % entry) == \
                            os.readlink("/proc/%d/ns/pid" % self.leader):
                        return int(entry)
        return None

    def poweroff(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.run("systemctl poweroff", check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            kill_process_tree(self.proc)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
