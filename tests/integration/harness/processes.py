"""The process registry: everything the harness starts is registered here
and killed at interpreter exit (atexit) or by cleanup_all(), so a failing
or interrupted run never leaves PostgreSQL, nginx or baa behind; and the
/proc helpers that find a process group's members and a master's workers."""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

_LOCK = threading.RLock()
_PROCS = []          # Popen objects started in their own session (pgid == pid)
_EXTRA_PIDS = set()  # e.g. worker pids seen, killed on cleanup if still there
_CLEANUPS = []       # callables run at cleanup (e.g. pg_ctl stop)
_TEMP_DIRS = []


def make_temp_dir(prefix="baa-it-"):
    """A temp dir that the unprivileged user can traverse and write to."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o777)
    _TEMP_DIRS.append(path)
    return path


def register_process(proc):
    with _LOCK:
        _PROCS.append(proc)
    return proc


def register_pid(pid):
    with _LOCK:
        _EXTRA_PIDS.add(pid)


def register_cleanup(fn):
    with _LOCK:
        _CLEANUPS.append(fn)


def pids_in_group(pgid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st["pgrp"] == pgid and st["state"] not in ("Z", "X"):
            out.append(int(entry))
    return out


def kill_process_tree(proc, sig=signal.SIGKILL):
    """Kill a process started with start_new_session=True and its whole group."""
    pgid = proc.pid
    first = [proc.pid] if proc.poll() is None else []
    for pid in first + pids_in_group(pgid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def cleanup_all():
    with _LOCK:
        procs = list(_PROCS)
        _PROCS.clear()
        extra = set(_EXTRA_PIDS)
        _EXTRA_PIDS.clear()
        cleanups = list(_CLEANUPS)
        _CLEANUPS.clear()
    for proc in procs:
        if proc.poll() is None or pids_in_group(proc.pid):
            kill_process_tree(proc)
    for pid in extra:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for fn in reversed(cleanups):
        try:
            fn()
        except Exception as exc:  # pragma: no cover - best effort
            print("harness cleanup error: %r" % (exc,), file=sys.stderr)
    if not os.environ.get("BAA_IT_KEEP_TMP"):
        for path in _TEMP_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.clear()


def proc_stat(pid):
    """Parse /proc/<pid>/stat -> dict(state, ppid, pgrp) or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "r") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces/parens: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    return {"state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2])}


def pid_alive(pid):
    """True if the process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st["state"] not in ("Z", "X")


def child_pids(pid, include_zombies=False):
    """Children of pid (from /proc/<pid>/task/<pid>/children, fallback scan)."""
    path = "/proc/%d/task/%d/children" % (pid, pid)
    pids = None
    try:
        with open(path) as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        if os.path.exists("/proc/%d" % pid):
            pids = []
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    st = proc_stat(int(entry))
                    if st and st["ppid"] == pid:
                        pids.append(int(entry))
        else:
            return []
    if include_zombies:
        return sorted(pids)
    return sorted(p for p in pids if pid_alive(p))
