"""Where a benchmark row's CPU goes, by perf: tests/load/bench.py --perf.

While wrk runs, `perf record -a` samples every CPU; afterwards the samples
are grouped by the row's process groups (bench.py's: baa or Kore, nginx,
this run's PostgreSQL, the stand-in; by pid, since Kore's workers rename
themselves), wrk, and other, each split into user space and the kernel,
and the hottest symbols of the row's application (baa's workers, or
Kore's) are listed. Needs perf and the right to sample
the whole machine (root, or kernel.perf_event_paranoid <= -1); without
them the row is measured as usual and the breakdown says why it is
missing.
"""

import os
import re
import shutil
import subprocess
import tempfile

FREQUENCY = 1999  # Hz per CPU, odd so as not to beat with timers
TOP_SYMBOLS = 12


def available():
    """None when perf can sample the machine, else why not."""
    if not shutil.which("perf"):
        return "perf is not installed (Debian: linux-perf)"
    if os.geteuid() != 0:
        try:
            with open("/proc/sys/kernel/perf_event_paranoid") as f:
                if int(f.read()) > -1:
                    return "sampling every CPU needs root or kernel.perf_event_paranoid = -1"
        except (OSError, ValueError):
            return "kernel.perf_event_paranoid is unreadable"
    return None


class Recording:
    """perf record -a for the life of a `with` block."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="baa-bench-perf-")
        self.data = os.path.join(self.dir, "perf.data")
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["perf", "record", "-a", "-F", str(FREQUENCY), "-o", self.data, "--quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(2)  # SIGINT: perf writes its file and exits
        self.proc.wait(30)
        return False

    def breakdown(self, groups):
        """groups: {group: pids} (bench.py's, for the row) ->
        {'groups': {group: (share, kernel share)}, 'app_symbols': [(share, dso, symbol)]}
        (shares of all samples; wrk's own and everything else's too), or
        None when perf wrote nothing."""
        if not os.path.exists(self.data):
            return None
        group_of = {pid: g for g, pids in groups.items() for pid in pids}
        shares = {}
        for share, task, dso in self._report(["--sort", "pid,dso"]):
            pid, _, comm = task.partition(":")
            group = group_of.get(int(pid) if pid.isdigit() else -1,
                                 "wrk" if comm == "wrk" else "other")
            all_, k = shares.get(group, (0.0, 0.0))
            shares[group] = (all_ + share, k + (share if dso.startswith("[kernel") else 0.0))
        app = ",".join(str(p) for p in groups.get("baa", ()))
        symbols = self._report(["--pid", app, "--sort", "dso,sym"])[:TOP_SYMBOLS] if app else []
        shutil.rmtree(self.dir, ignore_errors=True)
        return {"groups": shares, "app_symbols": symbols}

    def _report(self, sort):
        res = subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                              "-g", "none", "--percent-limit", "0.3"] + sort,
                             capture_output=True, text=True, timeout=120)
        rows = []
        for line in res.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.*\S)", line)
            if m and not line.lstrip().startswith("#"):
                rows.append((float(m.group(1)), m.group(2), m.group(3)))
        return rows


def lines(name, connections, b):
    """The markdown lines of one row's breakdown."""
    if b is None:
        return ["- %s, %d connections: perf recorded nothing" % (name, connections)]
    labels = {"baa": "Kore" if name.startswith("kore") else "baa", "postgres": "PostgreSQL",
              "fake": "stand-in"}
    parts = ["%s %.0f%% (kernel %.0f%%)" % (labels.get(g, g), all_, k)
             for g, (all_, k) in sorted(b["groups"].items(), key=lambda kv: -kv[1][0])]
    out = ["- %s, %d connections, samples of both CPUs: %s" % (name, connections, ", ".join(parts))]
    if b["app_symbols"]:
        out.append("  - %s's hottest: " % ("Kore" if name.startswith("kore") else "baa") + ", ".join(
            "%s %.1f%%" % (sym.replace("[k] ", "").replace("[.] ", ""), share)
            for share, _, sym in b["app_symbols"]))
    return out
