"""What every other harness module needs: where the tree is, who we run
as, waiting, free ports, and reading files that may not exist."""

import grp
import os
import pwd
import socket
import time

# tests/integration: this package's parent
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(HERE))
IS_ROOT = os.geteuid() == 0
UNPRIVILEGED_USER = "nobody"


class HarnessError(Exception):
    """Set-up of the environment (not the code under test) went wrong."""


def wait_until(predicate, timeout, interval=0.02, message=None):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError (so tests report a failure, not an error) after
    `timeout` seconds. Exceptions from predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1fs" % timeout)
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As baa binds: TIME_WAIT leftovers of earlier tests do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_answers(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def nobody_ids():
    pw = pwd.getpwnam(UNPRIVILEGED_USER)
    return pw.pw_uid, pw.pw_gid


def group_name(gid):
    return grp.getgrgid(gid).gr_name


def give_to_nobody(path):
    if IS_ROOT:
        uid, gid = nobody_ids()
        os.chown(path, uid, gid)


def as_unprivileged(argv):
    """PostgreSQL refuses to run as root: prefix with runuser when we are root."""
    if IS_ROOT:
        return ["runuser", "-u", UNPRIVILEGED_USER, "--"] + list(argv)
    return list(argv)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
