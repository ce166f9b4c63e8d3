"""A real Prometheus (Debian's /usr/bin/prometheus) with a configuration
the caller gives, storing in a temp dir, its HTTP API on a free loopback
port; and the API calls the tests make of it."""

import json
import os
import subprocess
import urllib.parse

from .base import HarnessError, free_port, read_text, wait_until
from .processes import kill_process_tree, make_temp_dir, register_process
from .web import http_request

PROMETHEUS_BIN = os.environ.get("BAA_IT_PROMETHEUS", "/usr/bin/prometheus")


class Prometheus:
    """config: the text of a prometheus.yml. start() waits until /-/ready;
    the process is in the registry, so it dies with the run; stop() ends
    it sooner (the caller adds it as a cleanup)."""

    def __init__(self, config):
        self.dir = make_temp_dir("baa-it-prometheus-")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self, timeout=30):
        if not os.access(PROMETHEUS_BIN, os.X_OK):
            raise HarnessError("%s is missing: apt-get install prometheus (scripts/setup-debian)"
                               % PROMETHEUS_BIN)
        argv = [PROMETHEUS_BIN, "--config.file=" + self.config_path,
                "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port]
        with open(self.log_path, "w") as log:
            self.proc = register_process(subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError("prometheus exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                return http_request(self.port, "GET", "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout, interval=0.1, message="prometheus was not ready in %ds:\n%s"
                   % (timeout, self.log_path))
        return self

    def stop(self):
        if self.proc is not None:
            kill_process_tree(self.proc)

    def log(self):
        return read_text(self.log_path)

    def api(self, path, params=()):
        """GET /api/v1/<path>?<params, (name, value) pairs> -> its JSON
        document (status "success", or "error" with errorType and error),
        whatever the HTTP status."""
        query = urllib.parse.urlencode([(k, v) for k, v in params if v is not None])
        status, _, body = http_request(self.port, "GET", "/api/v1/%s?%s" % (path, query), timeout=10)
        try:
            return json.loads(body.decode())
        except ValueError:
            raise HarnessError("prometheus answered %d, not JSON: %r" % (status, body[:300]))

    def query(self, expr, at=None):
        """An instant query (at: Unix time, default now) -> the JSON document."""
        return self.api("query", [("query", expr), ("time", None if at is None else "%.3f" % at)])

    def vector(self, expr, at=None):
        """An instant query that must succeed -> [(labels, value)]."""
        doc = self.query(expr, at)
        if doc.get("status") != "success":
            raise AssertionError("prometheus refused %r: %s" % (expr, doc))
        if doc["data"]["resultType"] != "vector":
            raise AssertionError("%r is a %s, not a vector" % (expr, doc["data"]["resultType"]))
        return [(r["metric"], float(r["value"][1])) for r in doc["data"]["result"]]

    def targets(self):
        return self.api("targets", [("state", "active")])["data"]["activeTargets"]

    def label_values(self, label, match):
        """The values of label on the series match selects (Grafana's label_values)."""
        return self.api("label/%s/values" % label, [("match[]", match)])["data"]
