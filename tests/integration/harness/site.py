"""The shipped site: nginx/baa.conf.in rendered by `scripts/render-nginx
local`, one nginx over several instances, with HTTPS."""

import collections
import os
import re
import signal
import subprocess

from .base import REPO, HarnessError, free_port, read_text, wait_until
from .browser import Browser
from .nginx import NGINX_BIN
from .processes import kill_process_tree, make_temp_dir, register_process
from .web import https_request, parse_metrics


# What scripts/render-nginx reads besides its arguments: none leaks in from outside.
_SITE_RENDER_VARIABLES = ("METRICS_ALLOW", "UPSTREAM_KEEPALIVE", "UPSTREAM_KEEPALIVE_TIMEOUT",
                          "SPOTIFY_UPSTREAMS", "LOGIN_RATE", "LOGIN_BURST", "SERVER_NAME",
                          "TLS_CERT", "TLS_KEY", "STATIC_ROOT", "LOG_DIR", "HTTP_LISTEN",
                          "HTTPS_LISTEN", "INTERNAL_UPSTREAMS", "INTERNAL_HTTP_LISTEN",
                          "PROTECT_UPSTREAM", "PROTECT_LOCATION")


# One line of the site's access log (log_format baa in nginx/baa.conf.in):
# seconds is $request_time; upstreams, the addresses tried in order, the
# last one the one that answered.
AccessRecord = collections.namedtuple("AccessRecord", "method uri status seconds upstreams")


class SiteNginx:
    """nginx with the shipped site (nginx/baa.conf.in, `scripts/render-nginx
    local`) in front of several instances (upstreams: "HOST:PORT" or
    "unix:/path"): one upstream of them all, failing over as production
    does (fastcgi_next_upstream, max_fails, fail_timeout). HTTPS on
    https_port; the caller stops it (stop() as a cleanup).
    """

    def __init__(self, upstreams, render_env=None, fail_timeout=None):
        """fail_timeout: seconds instead of the site's, for tests that wait
        for nginx to take a restarted instance back (nothing else changes)."""
        self.upstreams = list(upstreams)
        self.state = make_temp_dir("baa-it-site-")
        self.http_port = free_port()
        self.https_port = free_port()
        while self.https_port == self.http_port:
            self.https_port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _SITE_RENDER_VARIABLES}
        env.update(render_env or {})
        res = subprocess.run([os.path.join(REPO, "scripts", "render-nginx"), "local", self.state,
                              str(self.http_port), str(self.https_port)] + self.upstreams,
                             env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=60)
        if res.returncode != 0:
            raise HarnessError("render-nginx local failed (%d):\n%s%s" % (
                res.returncode, res.stdout, res.stderr))
        conf = os.path.join(self.state, "nginx", "baa.conf")
        self.site = read_text(conf)
        if fail_timeout is not None:
            self.site, n = re.subn(r"\bfail_timeout=\w+", "fail_timeout=%ds" % fail_timeout, self.site)
            if n == 0:
                raise HarnessError("the rendered site sets no fail_timeout to change")
            with open(conf, "w") as f:
                f.write(self.site)
        self.proc = None

    def _argv(self, *extra):
        return [NGINX_BIN, "-p", os.path.join(self.state, "nginx") + "/",
                "-c", os.path.join(self.state, "nginx", "nginx.conf"),
                "-e", os.path.join(self.state, "log", "nginx-error.log")] + list(extra)

    def start(self, timeout=10):
        res = subprocess.run(self._argv("-t"), capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("nginx -t rejected the rendered site:\n%s%s" % (res.stdout, res.stderr))
        self.proc = register_process(subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("nginx exited with %s:\n%s" % (self.proc.returncode, self.error_log()))
            try:
                return self.request("GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(up, timeout, interval=0.05, message="nginx did not answer /healthz with 200")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        kill_process_tree(self.proc)

    def request(self, method, path, headers=None, body=None, timeout=10):
        return https_request(self.https_port, method, path, headers=headers, body=body,
                             timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def setting(self, name, default=None):
        """A duration directive (or server parameter) of the rendered site, in seconds."""
        m = re.search(r"\b%s[ =](\d+)(ms|s)?\b" % re.escape(name), self.site)
        if not m:
            return default
        return int(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)

    def counter(self, i, route="me", status=200, timeout=5):
        """baa_requests_total of instance i (/metrics/i), or None if it did not answer."""
        try:
            code, _, body = self.get("/metrics/%d" % i, timeout=timeout)
        except OSError:
            return None
        if code != 200:
            return None
        return parse_metrics(body.decode()).get(
            'baa_requests_total{route="%s",status="%d"}' % (route, status), 0.0)

    def browser(self):
        """A harness Browser (its own cookie jar) talking HTTPS to this site."""
        b = Browser(self.https_port)
        b.transport = https_request
        return b

    def error_log(self):
        return read_text(os.path.join(self.state, "log", "nginx-error.log"))

    def upstream_errors(self):
        """{"<error> while <doing what>": count} of nginx's [error] lines (errno dropped)."""
        counts = {}
        for line in self.error_log().splitlines():
            m = re.search(r"\[error\] \d+#\d+: \*\d+ (.*?)(?: \(\d+: [^)]*\))?(?: while (.*?))?, client:",
                          line)
            if m:
                key = m.group(1) + (" while " + m.group(2) if m.group(2) else "")
                counts[key] = counts.get(key, 0) + 1
        return counts

    def access_log_path(self):
        return os.path.join(self.state, "log", "nginx-access.log")

    def access_log_size(self):
        """Where the access log ends now: pass it to access_records(since=...)."""
        try:
            return os.path.getsize(self.access_log_path())
        except FileNotFoundError:
            return 0

    def access_records(self, since=0, uri=None):
        """An AccessRecord of each request logged from byte `since` of the
        access log on (of those for `uri` only, when given)."""
        try:
            with open(self.access_log_path(), "r", errors="replace") as f:
                f.seek(since)
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            m = re.search(r'"(\w+) (\S+) [^"]*" (\d{3}) \d+ ([\d.]+) (.*)$', line)
            if m and uri in (None, m.group(2)):
                ups = [u.strip() for u in m.group(5).replace(" : ", ", ").split(",")
                       if u.strip() not in ("", "-")]
                out.append(AccessRecord(m.group(1), m.group(2), int(m.group(3)),
                                        float(m.group(4)), ups))
        return out
