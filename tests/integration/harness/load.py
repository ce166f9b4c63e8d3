"""Load from the test process: request loops, a request in flight,
functions released together, and wrk's count.lua line."""

import os
import re
import threading
import time

from .base import REPO
from .web import http_request


class Hammer:
    """Threads sending requests in a loop until stopped; records every outcome."""

    def __init__(self, port, paths, threads=3, timeout=10, max_requests=100000):
        self.port = port
        self.paths = list(paths)
        self.nthreads = threads
        self.timeout = timeout
        self.max_requests = max_requests
        self.stop_event = threading.Event()
        self.results = []  # (path, status or exception repr)
        self._lock = threading.Lock()
        self._threads = []

    def _loop(self, idx):
        i = idx
        while not self.stop_event.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                status, _, _ = http_request(self.port, "GET", path, timeout=self.timeout)
                outcome = status
            except Exception as exc:  # record, never raise in a thread
                outcome = repr(exc)
            with self._lock:
                self.results.append((path, outcome))
                if len(self.results) >= self.max_requests:
                    self.stop_event.set()

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._loop, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def count(self):
        with self._lock:
            return len(self.results)

    def stop(self, timeout=30):
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout)
        with self._lock:
            return list(self.results)

    def failures(self):
        with self._lock:
            return [r for r in self.results if r[1] != 200]


class BackgroundRequest:
    """A single HTTP request running in a thread (for 'in flight' tests)."""

    def __init__(self, port, method, path, timeout=30):
        self.result = None
        self.error = None
        self.done = threading.Event()

        def run():
            try:
                self.result = http_request(port, method, path, timeout=timeout)
            except Exception as exc:
                self.error = exc
            finally:
                self.done.set()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout):
        self.done.wait(timeout)
        return self.done.is_set()


def run_concurrently(funcs, timeout=30):
    """Call every function in its own thread, released together; -> results in order.

    A raised exception is returned in place of the result."""
    results = [None] * len(funcs)
    barrier = threading.Barrier(len(funcs))

    def run(i, fn):
        try:
            barrier.wait(timeout)
            results[i] = fn()
        except Exception as exc:  # returned, never raised in a thread
            results[i] = exc
    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(funcs)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("concurrent requests did not finish within %ss" % timeout)
    return results


# wrk with tests/load/count.lua: non-200 answers and socket errors in one line.
WRK_COUNT_LUA = os.path.join(REPO, "tests", "load", "count.lua")


def parse_wrk_count(out):
    """The BAA-WRK line's fields ({"requests": n, "non200": n, ...}), or None."""
    m = re.search(r"BAA-WRK (.*)", out or "")
    if not m:
        return None
    stats = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        stats[k] = int(v) if re.fullmatch(r"\d+", v) else v
    return stats
