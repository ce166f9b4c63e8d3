"""Debian for the tests that treat baa as an operator's machine would: the
package built from the tree (dpkg-buildpackage, once per run), a minimal
bookworm root (debootstrap, kept under BAA_IT_CACHE for the day), commands
run inside it (chroot in a mount namespace of their own), and a root with
the package installed as apt installs it (test_package.py,
test_systemd.py)."""

import datetime
import glob
import os
import shutil
import subprocess
import time
from collections import namedtuple

from .base import REPO, HarnessError
from .env import clean_env
from .processes import make_temp_dir

CACHE = os.environ.get("BAA_IT_CACHE", "/var/tmp/baa-it-cache")
MIRROR = os.environ.get("BAA_IT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"


def run_checked(argv, timeout, what, **kwargs):
    """argv's CompletedProcess; a failure is the environment's (HarnessError)
    unless the caller passes check=False and looks itself."""
    check = kwargs.pop("check", True)
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=timeout, **kwargs)
    if check and res.returncode != 0:
        raise HarnessError("%s failed (%d):\n%s\n%s" % (what, res.returncode,
                                                       res.stdout[-3000:], res.stderr[-3000:]))
    return res


def copy_of_the_tree(dest):
    """The files git tracks or would track, as they are now in the checkout."""
    out = run_checked(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
               "--exclude-standard"], 60, "git ls-files").stdout
    for rel in filter(None, out.split("\0")):
        src = os.path.join(REPO, rel)
        if not os.path.lexists(src):  # deleted in the checkout, not yet in git
            continue
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel), follow_symlinks=False)


def build_package(work):
    """dpkg-buildpackage in a copy of the tree under work; -> the .changes."""
    src = os.path.join(work, "baa")
    copy_of_the_tree(src)
    env = {k: v for k, v in clean_env().items()
           if k not in ("MAKEFLAGS", "MFLAGS", "CFLAGS", "CPPFLAGS", "LDFLAGS")
           and not k.startswith("DEB_")}
    # nocheck: scripts/test has run the unit tests (make check) already;
    # here they would only run again, and a flaky one fail the package.
    env["DEB_BUILD_OPTIONS"] = "nocheck parallel=%d" % (os.cpu_count() or 1)
    run_checked(["dpkg-buildpackage", "-us", "-uc", "-b"], 900, "dpkg-buildpackage", cwd=src, env=env)
    changes = glob.glob(os.path.join(work, "baa_*.changes"))
    if len(changes) != 1:
        raise HarnessError("dpkg-buildpackage left %r" % changes)
    return changes[0]


def debootstrapped_root(dest):
    """A minimal bookworm root at dest: today's cached one, copied, or a new
    one, cached first (renamed into place whole, so a run stopped halfway
    or another run at the same time never sees half a root)."""
    cached = os.path.join(CACHE, "%s-minbase-%s" % (SUITE, datetime.date.today().isoformat()))
    if not os.path.isdir(cached):
        os.makedirs(CACHE, exist_ok=True)
        fresh = os.path.join(CACHE, "new-%s-%d" % (SUITE, os.getpid()))
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            run_checked(["debootstrap", "--variant=minbase", SUITE, fresh, MIRROR], 900, "debootstrap")
            # Nothing installed in the root may start a service (policy-rc.d(8)).
            policy = os.path.join(fresh, "usr", "sbin", "policy-rc.d")
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
            try:
                os.rename(fresh, cached)
            except OSError:  # another run cached it meanwhile
                pass
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        # Other days' roots, and what a run killed during debootstrap left.
        for old in glob.glob(os.path.join(CACHE, "%s-minbase-*" % SUITE)) + \
                glob.glob(os.path.join(CACHE, "new-%s-*" % SUITE)):
            if old != cached and time.time() - os.path.getmtime(old) > 3600:
                shutil.rmtree(old, ignore_errors=True)
    run_checked(["cp", "-a", cached, dest], 300, "copying the cached root")


def in_root(root, script, timeout=300, check=True):
    """script run by /bin/sh as root inside the root; -> CompletedProcess."""
    inner = ('mount -t proc proc "$0/proc" && exec chroot "$0" /usr/bin/env -i '
             'PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 '
             'DEBIAN_FRONTEND=noninteractive /bin/sh -c "$1"')
    return run_checked(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", inner,
                root, script], timeout, "in the root: " + script, check=check)


_PACKAGE = None


def built_package():
    """The .changes of the package built from the tree, built at the first
    call of the run (a minute) and shared by every test after it."""
    global _PACKAGE
    if _PACKAGE is None:
        work = make_temp_dir("baa-it-deb-")
        os.chmod(work, 0o755)
        _PACKAGE = build_package(work)
    return _PACKAGE


def package_deb(changes):
    return glob.glob(os.path.join(os.path.dirname(changes), "baa_*.deb"))[0]


InstalledRoot = namedtuple("InstalledRoot", "path env_file")


def installed_root(dest, extra_packages=("systemd", "systemd-sysv", "dbus")):
    """A bookworm root at dest with the package installed by apt (its
    maintainer scripts run: the user, /etc/baa/baa.env), and systemd to boot
    it with (harness/nspawn.py)."""
    debootstrapped_root(dest)
    shutil.copy(package_deb(built_package()), os.path.join(dest, "tmp", "baa.deb"))
    in_root(dest, "apt-get update -q && apt-get install -y -q --no-install-recommends "
            "%s /tmp/baa.deb" % " ".join(extra_packages), timeout=600)
    return InstalledRoot(dest, "/etc/baa/baa.env")
