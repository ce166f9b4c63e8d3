"""configure: a missing library is named with the Debian package to install,
and the binary is built hardened (read from its ELF)."""

import glob
import os
import re
import shutil
import subprocess
import unittest

from harness import REPO, baa_bin, make_temp_dir


class ConfigureTest(unittest.TestCase):

    def configure_without(self, pc_name):
        """Runs configure seeing every pkg-config file but pc_name."""
        pcdir = make_temp_dir("baa-it-pc-")
        for path in glob.glob("/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc") + \
                glob.glob("/usr/lib/pkgconfig/*.pc") + glob.glob("/usr/share/pkgconfig/*.pc"):
            if os.path.basename(path) != pc_name:
                shutil.copy(path, pcdir)
        build = make_temp_dir("baa-it-configure-")
        env = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir)
        env.pop("PKG_CONFIG_PATH", None)
        return subprocess.run([os.path.join(REPO, "configure")], cwd=build, env=env,
                              capture_output=True, text=True, timeout=120)

    def setUp(self):
        if not os.path.exists(os.path.join(REPO, "configure")):
            self.skipTest("configure not generated (run scripts/build)")

    def test_missing_cjson_names_libcjson_dev(self):
        res = self.configure_without("libcjson.pc")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("install the Debian package libcjson-dev", res.stderr)

    def test_missing_fcgi_names_libfcgi_dev(self):
        res = self.configure_without("fcgi.pc")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("install the Debian package libfcgi-dev", res.stderr)


def readelf(option, path):
    if shutil.which("readelf") is None:
        raise AssertionError("readelf not found: install binutils")
    res = subprocess.run(["readelf", "-W", option, path], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise AssertionError("readelf %s %s: %s" % (option, path, res.stderr))
    return res.stdout


class HardeningTest(unittest.TestCase):
    """What configure's hardening flags leave in the binary under test
    (BAA_BIN): a flag that a compiler upgrade or a configure change drops
    silently fails here."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bin = baa_bin()
        cls.header = readelf("--file-header", cls.bin)
        cls.segments = readelf("--program-headers", cls.bin)
        cls.dynamic = readelf("--dynamic", cls.bin)
        # "Num: Value Size Type Bind Vis Ndx Name": the names libc must supply.
        cls.imports = set()
        for line in readelf("--dyn-syms", cls.bin).splitlines():
            fields = line.split()
            if len(fields) >= 8 and fields[6] == "UND":
                cls.imports.add(fields[7].split("@")[0])

    def test_binary_is_position_independent(self):
        # -fPIE -pie: an ELF of type DYN, loaded at a random address.
        m = re.search(r"^\s*Type:\s+(\S+)", self.header, re.M)
        self.assertIsNotNone(m, self.header)
        self.assertEqual(m.group(1), "DYN", "%s is not a PIE" % self.bin)

    def test_relocations_are_resolved_at_start_and_made_read_only(self):
        # -z relro: a GNU_RELRO segment; -z now: every symbol bound at
        # start, so that the whole GOT goes read-only before main.
        self.assertIn("GNU_RELRO", self.segments, "no GNU_RELRO segment in %s" % self.bin)
        flags = " ".join(l for l in self.dynamic.splitlines()
                         if re.search(r"\((BIND_NOW|FLAGS|FLAGS_1)\)", l))
        self.assertRegex(flags, r"\bBIND_NOW\b|\bNOW\b",
                         "%s is not bound at start (dynamic flags: %r)" % (self.bin, flags))

    def test_functions_with_arrays_on_the_stack_have_a_canary(self):
        # -fstack-protector-strong: a smashed canary calls __stack_chk_fail.
        self.assertTrue("__stack_chk_fail" in self.imports, "%s has no stack protector" % self.bin)

    def test_libc_calls_with_known_bounds_are_fortified(self):
        if "__asan_init" in self.imports:
            self.skipTest("sanitizer builds go without _FORTIFY_SOURCE (configure.ac)")
        fortified = [n for n in self.imports if n.endswith("_chk") and n != "__stack_chk_fail"]
        self.assertTrue(fortified, "%s calls no __*_chk function: built without "
                        "_FORTIFY_SOURCE" % self.bin)
