"""A tiny HTTP CONNECT proxy (Python standard library), for the HTTPS_PROXY tests.

    proxy = ConnectProxy().start()
    ... give baa HTTPS_PROXY=proxy.url ...
    proxy.tunnels        # ["127.0.0.1:PORT", ...]: one per CONNECT, in order
    proxy.stop()

It answers `CONNECT host:port HTTP/1.1` with 200 and relays bytes both ways
until either side closes, as an egress proxy does for TLS: it never sees
inside the tunnel. Anything else gets 405; a target it cannot reach, 502.
Loopback only; a thread per connection; every wait is bounded.
"""

import select
import socket
import threading

HEAD_MAX = 8192
IO_TIMEOUT = 10.0


class ConnectProxy:
    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = "http://%s:%d" % (host, self.port)
        self.tunnels = []   # CONNECT targets, in order
        self.refused = []   # first lines of requests that were not CONNECT
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sockets = set()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            open_sockets = list(self.sockets)
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)

    def _accept_loop(self):
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks):
        with self.lock:
            self.sockets.update(socks)

    def _serve(self, client):
        upstream = None
        self._track(client)
        try:
            client.settimeout(IO_TIMEOUT)
            head, rest = self._read_head(client)
            if head is None:
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or parts[0] != "CONNECT":
                with self.lock:
                    self.refused.append(" ".join(parts)[:200])
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            target = parts[1]
            with self.lock:
                self.tunnels.append(target)
            host, _, port = target.rpartition(":")
            try:
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            except (OSError, ValueError):
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._relay(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self.lock:
                        self.sockets.discard(sock)
                    sock.close()

    @staticmethod
    def _read_head(client):
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > HEAD_MAX:
                return None, b""
            chunk = client.recv(4096)
            if not chunk:
                return None, b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _relay(self, a, b):
        peers = {a: b, b: a}
        for sock in peers:
            sock.settimeout(None)
        while not self.stopping.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.5)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)
