"""configure: a missing library is named with the Debian package to install."""

import glob
import os
import shutil
import subprocess
import unittest

from harness import REPO, make_temp_dir


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
