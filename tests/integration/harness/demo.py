"""The demo application of scripts/demo-upstream.py, an HTTP server for
nginx to protect with baa's /auth: what it saw of each request (the
X-Baa-* headers among them) is what the tests read."""

import json
import os
import subprocess

from .base import REPO, HarnessError, read_text, wait_until
from .processes import kill_process_tree, make_temp_dir, register_process

DEMO_UPSTREAM = os.path.join(REPO, "scripts", "demo-upstream.py")


class DemoUpstream:
    """scripts/demo-upstream.py on a free loopback port; stop() as a cleanup."""

    def __init__(self):
        self.dir = make_temp_dir("baa-it-demo-")
        self.log_path = os.path.join(self.dir, "demo.log")
        port_file = os.path.join(self.dir, "port")
        self.log = open(self.log_path, "ab")
        self.proc = register_process(subprocess.Popen(
            ["/usr/bin/python3", DEMO_UPSTREAM, "--port", "0", "--port-file", port_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            start_new_session=True))

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("demo-upstream exited with %s:\n%s" % (
                    self.proc.returncode, read_text(self.log_path)))
            return os.path.exists(port_file)
        wait_until(up, 10, message="demo-upstream wrote no port")
        self.port = int(read_text(port_file))
        self.url = "http://127.0.0.1:%d" % self.port

    def seen(self):
        """Every request it answered, oldest first: {"method", "path", "user"}
        with user the X-Baa-* headers it received."""
        return [json.loads(line) for line in read_text(self.log_path).splitlines() if line.strip()]

    def stop(self):
        kill_process_tree(self.proc)
        self.log.close()
