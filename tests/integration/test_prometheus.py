"""deploy/prometheus: the scrape configuration and the alerting rules are
valid to Prometheus's own tool (promtool check config, check rules), the
rules' unit tests pass (promtool test rules baa-rules.test.yml: each alert
fires on its series and stays quiet on healthy ones), and every baa_*
series the rules ask for is one a running baa exposes at /metrics, with
the labels the rules select on.
"""

import os
import re
import shutil
import subprocess

from harness import REPO, BaaTestCase, make_temp_dir, parse_metrics

HERE = os.path.join(REPO, "deploy", "prometheus")


def promtool(*args, cwd=HERE):
    if shutil.which("promtool") is None:
        raise AssertionError("promtool is missing: apt-get install prometheus (scripts/setup-debian)")
    return subprocess.run(["promtool"] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


class PrometheusRulesTest(BaaTestCase):
    workers = 1

    def assertSucceeds(self, res):
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_rules_are_valid(self):
        res = promtool("check", "rules", "baa-rules.yml")
        self.assertSucceeds(res)
        self.assertIn("SUCCESS", res.stdout)

    def test_rules_unit_tests_pass(self):
        res = promtool("test", "rules", "baa-rules.test.yml")
        self.assertSucceeds(res)
        self.assertIn("SUCCESS", res.stdout)

    def test_scrape_configuration_is_valid(self):
        work = make_temp_dir("baa-it-prometheus-")
        with open(os.path.join(HERE, "prometheus.yml")) as f:
            text = f.read()
        # Its rule file as installed on the Prometheus host: this tree's.
        self.assertIn("/etc/prometheus/baa-rules.yml", text)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(text.replace("/etc/prometheus/baa-rules.yml",
                                 os.path.join(HERE, "baa-rules.yml")))
        res = promtool("check", "config", os.path.join(work, "prometheus.yml"), cwd=work)
        self.assertSucceeds(res)

    def test_every_series_the_rules_use_is_one_baa_exposes(self):
        with open(os.path.join(HERE, "baa-rules.yml")) as f:
            rules = f.read()
        used = set(re.findall(r"\b(baa_\w+)\{([^}]*)\}", rules))
        self.assertGreater(len(used), 4)
        _, nginx = self.start_stack()
        # baa_requests_total has a row once its route has answered.
        self.assertEqual(nginx.get("/healthz")[0], 200)
        status, _, body = nginx.get("/metrics")
        self.assertEqual(status, 200)
        exposed = parse_metrics(body.decode())
        names = {re.match(r"\w+", k).group(0) for k in exposed}
        for name, selectors in used:
            with self.subTest(series=name):
                self.assertIn(name, names, "the rules ask for a series baa does not expose")
                for label, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', selectors):
                    if label in ("job", "instance"):
                        continue  # Prometheus's own target labels
                    values = {m.group(1) for k in exposed if k.startswith(name + "{")
                              for m in [re.search(r'\b%s="([^"]*)"' % label, k)] if m}
                    self.assertTrue(values, "%s has no label %s" % (name, label))
                    pattern = re.compile("^(?:%s)$" % value)
                    if label != "status":  # statuses appear as traffic comes
                        self.assertTrue(any(pattern.match(v) for v in values),
                                        "%s{%s=~%r}: baa's values are %s"
                                        % (name, label, value, sorted(values)))
