#!/usr/bin/python3
"""Run the baa integration tests.

usage: /usr/bin/python3 tests/integration/run.py [--quick] [--durations[=N]] [NAME_FILTER ...]

A test runs if any filter is a substring of its id (module.Class.test_name).
Prints `ok NAME` / `FAIL NAME` (+ traceback) / `skip NAME (reason)` per test,
then, when SANITIZER_LOG_DIR is set, a check that the sanitizers wrote no
report, and finally one line `N passed, N failed[, N skipped]`.
Exit status 0 iff nothing failed.

--quick (or BAA_QUICK=1): tests tagged @slow (harness/tags.py) are skipped,
  and reported as skipped. Tests tagged @root_only skip when not root.
--durations[=N]: before the last line, the N slowest tests (default 15) and
  each module's time, class set-up included, as `#` lines (also
  BAA_IT_DURATIONS=N, e.g. through scripts/test).

Environment: BAA_BIN (default <repo>/build/src/baa), SANITIZER_LOG_DIR,
BAA_QUICK, BAA_IT_SUITE_TIMEOUT (seconds, default 1800: the whole run is
aborted, with cleanup, after that long).
"""

import os
import signal
import sys
import threading
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def filter_suite(suite, filters):
    if not filters:
        return suite
    out = unittest.TestSuite()
    for test in iter_tests(suite):
        if any(f in test.id() for f in filters):
            out.addTest(test)
    return out


class LineResult(unittest.TestResult):
    """Prints one line per test when it ends; subtest failures fail the test."""

    def __init__(self, stream, names):
        super().__init__()
        self.stream = stream
        self.names = names
        self.n_passed = 0
        self.n_failed = 0
        self.n_skipped = 0
        self._current = None
        self.durations = []  # (test id, seconds of the test, seconds since the last one ended)
        self._last_stop = time.monotonic()

    def _name(self, test):
        return self.names.get(test.id(), test.id())

    def _print(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        self._current = {"failures": [], "skip": None, "start": time.monotonic()}

    def _add_failure(self, test, err, label=""):
        self._current["failures"].append((label, self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase) and self._current is not None:
            self._add_failure(test, err)
        else:  # setUpClass / tearDownClass / module fixtures
            self.n_failed += 1
            self._print("FAIL %s" % getattr(test, "description", str(test)))
            self._print(self._exc_info_to_string(err, test).rstrip())

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add_failure(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._add_failure(test, err, label=subtest._subDescription())

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._current["skip"] = reason

    def stopTest(self, test):
        super().stopTest(test)
        cur = self._current
        self._current = None
        name = self._name(test)
        now = time.monotonic()
        self.durations.append((test.id(), now - cur["start"], now - self._last_stop))
        self._last_stop = now
        if cur["failures"]:
            self.n_failed += 1
            self._print("FAIL %s" % name)
            for label, tb in cur["failures"]:
                if label:
                    self._print("  subtest %s:" % label)
                self._print(tb.rstrip())
        elif cur["skip"] is not None:
            self.n_skipped += 1
            self._print("skip %s (%s)" % (name, cur["skip"]))
        else:
            self.n_passed += 1
            self._print("ok %s" % name)


def short_names(tests):
    """Method name, qualified with the class only where it would be ambiguous."""
    by_method = {}
    for t in tests:
        by_method.setdefault(t._testMethodName, []).append(t)
    names = {}
    for method, ts in by_method.items():
        for t in ts:
            names[t.id()] = method if len(ts) == 1 else "%s.%s" % (type(t).__name__, method)
    return names


def sanitizer_check(result):
    log_dir = os.environ.get("SANITIZER_LOG_DIR")
    if not log_dir:
        return
    files = sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []
    if not files:
        result.n_passed += 1
        result._print("ok sanitizer_reports_are_absent")
        return
    result.n_failed += 1
    result._print("FAIL sanitizer_reports_are_absent: %d report(s) in %s" % (len(files), log_dir))
    for f in files:
        result._print("===== %s =====" % f)
        result._print(harness.read_text(os.path.join(log_dir, f))[:20000].rstrip())


def print_durations(result, n):
    """The n slowest tests and every module's time, as comment lines."""
    out = result._print
    out("# slowest %d tests (seconds, set-up of their class not included):" % n)
    for tid, secs, _ in sorted(result.durations, key=lambda d: -d[1])[:n]:
        out("#   %7.1f  %s" % (secs, tid))
    modules = {}
    for tid, _, span in result.durations:
        modules[tid.split(".")[0]] = modules.get(tid.split(".")[0], 0.0) + span
    out("# modules (seconds, class set-up included):")
    for mod, secs in sorted(modules.items(), key=lambda m: -m[1]):
        out("#   %7.1f  %s" % (secs, mod))


def install_watchdog(seconds):
    def fire():
        sys.stderr.write("\nrun.py: suite exceeded %ss, aborting\n" % seconds)
        try:
            import faulthandler
            faulthandler.dump_traceback(all_threads=True)
        except Exception:
            pass
        harness.cleanup_all()
        print("0 passed, 1 failed", flush=True)
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(argv):
    filters = [a for a in argv if not a.startswith("-")]
    durations = int(os.environ.get("BAA_IT_DURATIONS") or 0)
    for a in argv:
        if a == "--quick":
            # before the test modules are imported: the tags read it then
            os.environ["BAA_QUICK"] = "1"
        elif a == "--durations":
            durations = 15
        elif a.startswith("--durations="):
            durations = int(a.split("=", 1)[1])
    def on_sigterm(*_):
        # unittest would swallow SystemExit as a test error: clean up and leave now
        sys.stderr.write("run.py: terminated, cleaning up\n")
        harness.cleanup_all()
        os._exit(143)
    signal.signal(signal.SIGTERM, on_sigterm)
    install_watchdog(float(os.environ.get("BAA_IT_SUITE_TIMEOUT", "1800")))
    if os.environ.get("SANITIZER_LOG_DIR"):
        os.makedirs(os.environ["SANITIZER_LOG_DIR"], exist_ok=True)

    loader = unittest.TestLoader()
    suite = filter_suite(loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE), filters)
    tests = list(iter_tests(suite))
    result = LineResult(sys.stdout, short_names(tests))
    t0 = time.monotonic()
    try:
        suite.run(result)
    except Exception:  # a bug in the runner itself still ends in a summary line
        result.n_failed += 1
        result._print("FAIL run.py internal error\n" + traceback.format_exc().rstrip())
    finally:
        harness.cleanup_all()
    # load errors (e.g. a syntax error in a test module) show up as _FailedTest
    sanitizer_check(result)
    if durations:
        print_durations(result, durations)
    sys.stdout.write("# %d tests in %.1fs\n" % (len(tests), time.monotonic() - t0))
    line = "%d passed, %d failed" % (result.n_passed, result.n_failed)
    if result.n_skipped:
        line += ", %d skipped" % result.n_skipped
    print(line, flush=True)
    return 0 if result.n_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
