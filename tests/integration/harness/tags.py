"""Tags on tests and test classes, honoured through unittest's skips so that
run.py reports a tagged test as skipped (with the reason), never as passed.

  @slow("why")       takes more than a few seconds (outages, restarts, several
                     hosts, waiting on a clock): skipped when BAA_QUICK=1
                     (scripts/test --quick); the full run and CI run it.
  @root_only("why")  needs to be root (privilege drops, files only root may
                     make): skipped with the reason when not root.

On a class, the skip also spares its setUpClass (the stacks it starts).
"""

import os
import unittest

from .base import IS_ROOT


def quick():
    """BAA_QUICK is set (to anything but 0): the quick run."""
    return os.environ.get("BAA_QUICK", "") not in ("", "0")


def _tag(obj, name):
    tags = set(getattr(obj, "baa_tags", ()))
    tags.add(name)
    obj.baa_tags = frozenset(tags)
    return obj


def slow(why):
    """Skip under BAA_QUICK=1; why says what makes it slow."""
    def mark(obj):
        return unittest.skipIf(quick(), "slow: %s" % why)(_tag(obj, "slow"))
    return mark


def root_only(why):
    """Skip unless root; why says what needs root."""
    def mark(obj):
        return unittest.skipUnless(IS_ROOT, "needs root: %s" % why)(_tag(obj, "root_only"))
    return mark
