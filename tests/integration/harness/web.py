"""One HTTP(S) request on a fresh connection, and reading /metrics."""

import http.client
import ssl


def http_request(port, method, path, headers=None, body=None, timeout=10, host="127.0.0.1"):
    """One HTTP request on a fresh connection -> (status, headers, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def parse_metrics(text):
    """{'name{labels}': value} of every sample line of a /metrics answer."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


SITE_SSL = ssl.create_default_context()
SITE_SSL.check_hostname = False
SITE_SSL.verify_mode = ssl.CERT_NONE  # render-nginx local's self-signed certificate


def https_request(port, method, path, headers=None, body=None, timeout=10):
    """One HTTPS request on a fresh connection (certificate not verified)
    -> (status, headers, body bytes)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=SITE_SSL, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()
