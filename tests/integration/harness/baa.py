"""baa itself: subcommands run to completion, `baa serve` in the
background, and its logfmt lines parsed."""

import os
import re
import secrets
import signal
import subprocess

from .base import IS_ROOT, REPO, UNPRIVILEGED_USER, HarnessError, as_unprivileged, read_text, \
    wait_until
from .processes import _LOCK, _PROCS, child_pids, kill_process_tree, make_temp_dir, \
    pids_in_group, register_pid, register_process


def baa_bin():
    return os.environ.get("BAA_BIN") or os.path.join(REPO, "build", "src", "baa")


_BINARIES_NOBODY_CAN_READ = set()


def require_baa():
    path = baa_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError("baa binary not found or not executable at %s "
                             "(build it with scripts/build, or set BAA_BIN)" % path)
    if IS_ROOT and path not in _BINARIES_NOBODY_CAN_READ:
        # baa serve runs as nobody once bound; the sanitizers' symbolizer
        # then reads the binary as nobody.
        res = subprocess.run(as_unprivileged(["test", "-r", path, "-a", "-x", path]),
                             stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("%s must be readable and executable by %s (baa serve "
                               "runs as %s when the tests run as root): build in a "
                               "directory %s can reach" % (path, UNPRIVILEGED_USER,
                                                          UNPRIVILEGED_USER, UNPRIVILEGED_USER))
        _BINARIES_NOBODY_CAN_READ.add(path)
    return path


def serve_env(env):
    """env for `baa serve`: started as root, baa refuses to serve unless
    BAA_USER names the user to become, so the tests give it nobody (unless
    the test chose a BAA_USER itself)."""
    if IS_ROOT and "BAA_USER" not in env:
        env = dict(env, BAA_USER=UNPRIVILEGED_USER)
    return env


class Baa:
    """Runs baa subcommands and `baa serve` in the background."""

    def __init__(self, tmpdir=None):
        self.tmpdir = tmpdir or make_temp_dir("baa-it-baa-")
        self.bin = require_baa()
        self.proc = None
        self.logpath = None
        self._logf = None
        self.env = None

    def run(self, args, env, timeout=30, cwd=None):
        """Run `baa args...` and return CompletedProcess (text)."""
        argv = [self.bin] + list(args)
        proc = register_process(subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=cwd or self.tmpdir, stdin=subprocess.DEVNULL, start_new_session=True))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc)  # the whole group: a wrongly started server has workers
            out, err = proc.communicate()
            raise AssertionError("baa %s did not finish within %ss (killed)\nstdout=%r\nstderr=%r" % (
                " ".join(args), timeout, out, err))
        finally:
            if pids_in_group(proc.pid):
                kill_process_tree(proc)
            with _LOCK:
                if proc in _PROCS:
                    _PROCS.remove(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    # -- serve -----------------------------------------------------------
    def serve(self, env, wait_listening=True, timeout=15, umask=None, journal=False):
        """journal: JOURNAL_STREAM names the log file, as systemd names the
        journal's stream, so baa writes to it as to the journal."""
        env = serve_env(env)
        self.logpath = os.path.join(self.tmpdir, "baa-serve-%s.log" % secrets.token_hex(3))
        self._logf = open(self.logpath, "wb")
        if journal:
            st = os.fstat(self._logf.fileno())
            env = dict(env, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        self.env = env
        kwargs = {}
        if umask is not None:
            kwargs["umask"] = umask
        self.proc = register_process(subprocess.Popen(
            [self.bin, "serve"], env=env, stdin=subprocess.DEVNULL, stdout=self._logf,
            stderr=subprocess.STDOUT, cwd=self.tmpdir, start_new_session=True, **kwargs))
        if wait_listening:
            self.wait_listening(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return read_text(self.logpath) if self.logpath else ""

    def log_lines(self):
        return [l for l in self.log().splitlines() if l.strip()]

    def log_records(self):
        return [parse_logfmt(l) for l in self.log_lines()]

    def wait_listening(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("baa serve exited early with %s; log:\n%s" % (
                    self.proc.returncode, self.log()))
            return "event=listening" in self.log()
        try:
            wait_until(ready, timeout)
        except AssertionError as exc:
            if "exited early" in str(exc):
                raise
            raise AssertionError("baa serve did not log event=listening within %ss; log:\n%s"
                                 % (timeout, self.log()[-3000:]))
        expected = int(self.env.get("BAA_WORKERS", "0") or 0)
        if expected:
            wait_until(lambda: len(self.workers()) == expected, min(timeout, 5),
                       message="expected %d workers, have %r" % (expected, self.workers()))

    def workers(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = child_pids(self.proc.pid)
        for p in pids:
            register_pid(p)
        return pids

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Wait for the master to exit; returns exit status or raises AssertionError."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("baa serve (pid %d) did not exit within %ss; log:\n%s" % (
                self.proc.pid, timeout, self.log()[-3000:]))

    def stop(self):
        """Forceful cleanup (tests that check graceful exit do it themselves)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            kill_process_tree(self.proc)
        if self._logf:
            self._logf.close()
            self._logf = None


_LOGFMT_RE = re.compile(r'\s*([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_logfmt(line):
    """Parse one logfmt line into a dict; raises ValueError if malformed."""
    out = {}
    pos = 0
    line = line.rstrip("\n")
    while pos < len(line):
        if line[pos:].strip() == "":
            break
        m = _LOGFMT_RE.match(line, pos)
        if not m or m.end() == pos:
            raise ValueError("not logfmt at column %d: %r" % (pos, line))
        key, val = m.group(1), m.group(2)
        if val.startswith('"'):
            val = re.sub(r'\\(.)', lambda mm: {"n": "\n", "t": "\t"}.get(mm.group(1), mm.group(1)), val[1:-1])
        out[key] = val
        pos = m.end()
        if pos < len(line) and not line[pos].isspace():
            raise ValueError("garbage after value at column %d: %r" % (pos, line))
    return out


def configure_version():
    """Version from configure.ac's AC_INIT (the contract: `baa --version`)."""
    text = read_text(os.path.join(REPO, "configure.ac"))
    m = re.search(r"AC_INIT\(\s*\[?[^,\]]+\]?\s*,\s*\[?([^,\]\)]+)\]?", text)
    return m.group(1).strip() if m else "0.1.0"
