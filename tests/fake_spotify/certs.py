#!/usr/bin/python3
"""Throwaway certificates for the HTTPS stand-in, made with the openssl command.

    certs.py DIR        writes DIR/test-ca.pem (the CA to trust), DIR/server.pem
                        and DIR/server.key (the stand-in's), and the CA's key

A CA of its own (never in any system store) and a server certificate it
signs for 127.0.0.1, ::1 and localhost, valid for two days: enough for a
test run or a scripts/run-local session, useless to anyone who finds the
files later. Tests that need a certificate baa must refuse make a second
CA (`CertificateAuthority(dir, "other")`) or one for another name
(`issue(..., names=["DNS:other.example"])`).

Python 3 standard library and the `openssl` command (OpenSSL 3) only. EC
P-256 keys: generated in milliseconds, unlike RSA.
"""

import os
import shutil
import subprocess
import sys

DAYS = 2
LOOPBACK_NAMES = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")


class CertsError(Exception):
    """openssl is missing or refused to make a certificate."""


def openssl(args, cwd):
    exe = shutil.which("openssl")
    if not exe:
        raise CertsError("the openssl command is needed (Debian: apt-get install openssl)")
    res = subprocess.run([exe] + list(args), cwd=cwd, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    if res.returncode != 0:
        raise CertsError("openssl %s failed (%d):\n%s%s" % (args[0], res.returncode,
                                                           res.stdout, res.stderr))
    return res


class CertificateAuthority:
    """A CA in `directory`: <name>-ca.pem (the certificate to trust) and its key."""

    def __init__(self, directory, name="test"):
        self.directory = directory
        self.name = name
        self.ca_file = os.path.join(directory, "%s-ca.pem" % name)
        self.key_file = os.path.join(directory, "%s-ca.key" % name)
        os.makedirs(directory, exist_ok=True)
        openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-days", str(DAYS), "-subj", "/CN=baa %s CA (throwaway)" % name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", self.key_file, "-out", self.ca_file], directory)
        os.chmod(self.ca_file, 0o644)
        os.chmod(self.key_file, 0o600)

    def issue(self, name, names=LOOPBACK_NAMES):
        """A server certificate for `names` (subjectAltName entries): -> (cert, key) paths."""
        cert = os.path.join(self.directory, "%s.pem" % name)
        key = os.path.join(self.directory, "%s.key" % name)
        csr = os.path.join(self.directory, "%s.csr" % name)
        ext = os.path.join(self.directory, "%s.ext" % name)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                    % ",".join(names))
        openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-subj", "/CN=%s" % names[0].split(":", 1)[1],
                 "-keyout", key, "-out", csr], self.directory)
        openssl(["x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self.key_file,
                 "-CAcreateserial", "-days", str(DAYS), "-extfile", ext, "-out", cert],
                self.directory)
        os.unlink(csr)
        os.unlink(ext)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)
        return cert, key


class ServerCertificates:
    """The stand-in's usual set: a CA and a certificate for the loopback addresses."""

    def __init__(self, directory):
        self.directory = directory
        self.ca = CertificateAuthority(directory, "test")
        self.ca_file = self.ca.ca_file
        self.cert_file, self.key_file = self.ca.issue("server")


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: certs.py DIR\n")
        return 2
    ServerCertificates(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
