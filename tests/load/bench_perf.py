"""Where a benchmark row's CPU goes, by perf: tests/load/bench.py --perf.

While wrk runs, `perf record -a` samples every CPU; afterwards the samples
are grouped by process (baa, nginx, postgres, wrk, the stand-in, other)
and, within each, by user space against the kernel, and the hottest
symbols of baa's workers are listed. Needs perf and the right to sample
the whole machine (root, or kernel.perf_event_paranoid <= -1); without
them the row is measured as usual and the breakdown says why it is
missing.
"""

import os
import re
import shutil
import subprocess
import tempfile

# perf's comm names (the first 15 bytes of the program's name) by group.
GROUPS = (("baa", ("baa",)), ("nginx", ("nginx",)), ("postgres", ("postgres",)),
          ("wrk", ("wrk",)), ("stand-in", ("python3",)))
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

    def breakdown(self):
        """{'groups': {group: (share, kernel share)}, 'baa_symbols': [(share, dso, symbol)]}
        (shares of all samples), or None when perf wrote nothing."""
        if not os.path.exists(self.data):
            return None
        out = self._report(["--sort", "comm,dso"])
        groups, total = {}, 0.0
        for share, comm, dso in out:
            group = next((g for g, comms in GROUPS if comm in comms), "other")
            kernel = dso.startswith("[kernel")
            all_, k = groups.get(group, (0.0, 0.0))
            groups[group] = (all_ + share, k + (share if kernel else 0.0))
            total += share
        symbols = [(share, comm, sym) for share, comm, sym in
                   self._report(["--comms", "baa", "--sort", "dso,sym"])][:TOP_SYMBOLS]
        shutil.rmtree(self.dir, ignore_errors=True)
        return {"groups": groups, "total": total, "baa_symbols": symbols}

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
    parts = ["%s %.0f%% (kernel %.0f%%)" % (g, all_, k)
             for g, (all_, k) in sorted(b["groups"].items(), key=lambda kv: -kv[1][0])]
    out = ["- %s, %d connections, samples of both CPUs: %s" % (name, connections, ", ".join(parts))]
    if b["baa_symbols"]:
        out.append("  - baa's hottest: " + ", ".join(
            "%s %.1f%%" % (sym.replace("[k] ", "").replace("[.] ", ""), share)
            for share, _, sym in b["baa_symbols"]))
    return out
