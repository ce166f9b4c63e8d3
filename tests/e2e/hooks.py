"""What the browser test cannot do from the browser: make time pass for
the user's Spotify consent, and turn the stand-in's development mode on and
off. A small HTTP server on loopback that login.spec.mjs calls between its
steps (BAA_E2E_HOOKS_URL), run by run.py beside the stack:

  POST /grant-age?days=N          the user's authorization becomes N days old
  POST /development-mode?allow=ID only ID may use the app (as an app in
                                  Spotify's development mode whose owner
                                  added only ID)
  DELETE /development-mode        everyone may again
"""

import http.server
import threading
import urllib.parse


class Hooks:
    def __init__(self, pg, db, fake):
        self.pg, self.db, self.fake = pg, db, fake
        handler = type("HooksHandler", (Handler,), {"hooks": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def age_grant(self, days):
        self.pg.psql("UPDATE users SET authorized_at = now() - make_interval(days => %d)"
                     % int(days), db=self.db)

    def development_mode(self, allow):
        if allow is None:
            self.fake.set_development_mode(False)
        else:
            self.fake.set_development_mode(True, allowed_users=[allow])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    hooks = None

    def log_message(self, *args):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path == "/grant-age" and query.get("days", "").isdigit():
                self.hooks.age_grant(int(query["days"]))
            elif url.path == "/development-mode" and query.get("allow"):
                self.hooks.development_mode(query["allow"])
            else:
                return self.answer(404)
        except Exception:
            return self.answer(500)
        self.answer(204)

    def do_DELETE(self):
        if urllib.parse.urlsplit(self.path).path != "/development-mode":
            return self.answer(404)
        try:
            self.hooks.development_mode(None)
        except Exception:
            return self.answer(500)
        self.answer(204)
