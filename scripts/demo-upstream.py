#!/usr/bin/python3
"""A demo application for nginx to protect with baa's login (README.md,
"Protecting other applications"): scripts/run-local puts it behind /app/,
and tests/integration/test_auth_request.py behind the shipped site.

It answers every request with what nginx told it about the user, as JSON:
{"path": ..., "method": ..., "user": {"X-Baa-User-Id": ..., ...}} (the
X-Baa-* headers it received), and logs the same, one JSON line a request,
on stderr: what the application saw, for the tests to read.

usage: scripts/demo-upstream.py [--host 127.0.0.1] [--port 8082] [--port-file FILE]
(--port 0: any free port, written to --port-file). Standard library only.
"""

import argparse
import http.server
import json
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "baa-demo-upstream"

    def answer(self, body=True):
        seen = {
            "method": self.command,
            "path": self.path,
            "user": {k: v for k, v in self.headers.items() if k.lower().startswith("x-baa-")},
        }
        line = json.dumps(seen, sort_keys=True)
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        data = (line + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self.answer()

    def do_HEAD(self):
        self.answer(body=False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(length, 65536))
        self.answer()

    def log_message(self, fmt, *args):
        pass  # the JSON line above is the log


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
