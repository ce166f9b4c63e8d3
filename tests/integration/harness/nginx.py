"""A minimal nginx in front of one baa (FastCGI), as the tests of baa
alone need it; the shipped site is site.py."""

import os
import signal
import subprocess

from .base import IS_ROOT, UNPRIVILEGED_USER, HarnessError, free_port, give_to_nobody, \
    group_name, nobody_ids, port_answers, read_text, wait_until
from .processes import kill_process_tree, make_temp_dir, register_process
from .web import http_request

NGINX_BIN = os.environ.get("BAA_IT_NGINX", "/usr/sbin/nginx")
FASTCGI_PARAMS = "/etc/nginx/fastcgi_params"


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user_line}pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    upstream baa {{ server {upstream}; {keepalive} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include {fastcgi_params};
            {keep_conn}
            fastcgi_pass baa;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, upstream, user=None, kept=True):
        """upstream: '127.0.0.1:PORT' or 'unix:/path'.

        user: nginx worker user; default nobody (root only if asked for, e.g.
        to reach a unix socket whose permissions are not part of the contract).
        kept: kept FastCGI connections, as nginx/baa.conf.in has them (so
        the tests run the path production runs); False: one connection per
        request.
        """
        self.upstream = upstream
        self.dir = make_temp_dir("baa-it-nginx-")
        self.port = free_port()
        self.proc = None
        if user is None:
            user = "%s %s" % (UNPRIVILEGED_USER, group_name(nobody_ids()[1])) if IS_ROOT else None
        self.user = user
        for sub in ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
            p = os.path.join(self.dir, sub)
            os.mkdir(p)
            os.chmod(p, 0o777)
            give_to_nobody(p)
        conf = NGINX_CONF.format(dir=self.dir, port=self.port, upstream=upstream,
                                 fastcgi_params=FASTCGI_PARAMS,
                                 keepalive="keepalive 16; keepalive_timeout 2s; keepalive_time 2s;"
                                 if kept else "",
                                 keep_conn="fastcgi_keep_conn on;" if kept else "",
                                 user_line=("user %s;\n" % user) if user else "")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def _argv(self, *extra):
        return [NGINX_BIN, "-p", self.dir + "/", "-c", self.conf, "-e", os.path.join(self.dir, "error.log")] + list(extra)

    def start(self, timeout=10):
        res = subprocess.run(self._argv("-t"), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("nginx -t rejected %s:\n%s%s\n--- conf ---\n%s" % (
                self.conf, res.stdout, res.stderr, read_text(self.conf)))
        self.proc = register_process(subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True))

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("nginx exited with %s: %s\n%s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(errors="replace"), self.error_log()))
            return port_answers(self.port)
        wait_until(up, timeout, message="nginx did not answer on port %d" % self.port)
        return self

    def error_log(self):
        return read_text(os.path.join(self.dir, "error.log"))

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        kill_process_tree(self.proc)
        try:
            self.proc.stderr.close()
        except Exception:
            pass

    # -- HTTP ---------------------------------------------------------------
    def request(self, method, path, headers=None, body=None, timeout=10):
        return http_request(self.port, method, path, headers=headers, body=body, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)
