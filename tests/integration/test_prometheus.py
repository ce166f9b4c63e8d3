"""deploy/prometheus and deploy/grafana: the scrape configuration and the
alerting rules are valid to Prometheus's own tool (promtool check config,
check rules), the rules' unit tests pass (promtool test rules
baa-rules.test.yml: each alert fires on its series and stays quiet on
healthy ones), and every baa_* series the rules ask for is one a running
baa exposes at /metrics, with the labels the rules select on.

The Grafana dashboard is a dashboard (its variables, a query in every
panel), covers every series the alerts use, its queries parse (promtool,
Grafana's variables given values) and name only series, labels and label
values baa exposes.
"""

import json
import os
import re
import shutil
import subprocess

from harness import REPO, BaaTestCase, free_port, make_temp_dir, parse_metrics

HERE = os.path.join(REPO, "deploy", "prometheus")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "baa-dashboard.json")
SERVICE_KEY = "billing-service-key-0123456789abcdef-XYZ"
# Labels Prometheus gives every series of the job (prometheus.yml): not
# baa's to expose.
TARGET_LABELS = {"job", "instance", "instance_number"}


def promtool(*args, cwd=HERE):
    if shutil.which("promtool") is None:
        raise AssertionError("promtool is missing: apt-get install prometheus (scripts/setup-debian)")
    return subprocess.run(["promtool"] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def selectors(expr):
    """{(baa_* name, its selector's text)} of a PromQL expression."""
    return set(re.findall(r"\b(baa_\w+)\{([^}]*)\}", expr))


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dash):
    """Every panel but the rows (rows' own panels included)."""
    for p in dash["panels"]:
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def dashboard_queries(dash):
    """[(panel title, refId, expr)] of every target of every panel."""
    return [(p["title"], t["refId"], t["expr"]) for p in panels(dash) for t in p["targets"]]


def grafana_values(expr, rate_interval="1m", instance=".+"):
    """expr as Grafana sends it: its variables given values (instance: the
    regex for $instance; "All" is the variable's allValue, .+)."""
    values = {"__rate_interval": rate_interval, "__interval": "15s", "__range": "1h",
              "instance": instance}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


def exposed_sample_labels(exposed, name):
    """{label: {values}} of the samples of name in a parsed /metrics."""
    out = {}
    for key in exposed:
        if key == name or key.startswith(name + "{"):
            for label, value in re.findall(r'(\w+)="([^"]*)"', key):
                out.setdefault(label, set()).add(value)
    return out


def names_of(exposed):
    return {re.match(r"\w+", k).group(0) for k in exposed}


class ExposedSeriesMixin:
    def assertSeriesExposed(self, used, exposed):
        """Every (name, selector) in used: baa exposes name, with every label
        the selector names and (but for statuses, which appear as traffic
        comes) a value its matcher matches."""
        names = names_of(exposed)
        for name, selector in sorted(used):
            with self.subTest(series=name, selector=selector):
                self.assertIn(name, names, "a series baa does not expose")
                labels = exposed_sample_labels(exposed, name)
                for label, op, value in re.findall(r'(\w+)\s*(=~|!~|=|!=)\s*"([^"]*)"', selector):
                    if label in TARGET_LABELS:
                        continue
                    self.assertIn(label, labels, "%s has no label %s" % (name, label))
                    if label == "status" or op.startswith("!"):
                        continue
                    pattern = re.compile("^(?:%s)$" % value)
                    self.assertTrue(any(pattern.match(v) for v in labels[label]),
                                    "%s{%s%s%r}: baa's values are %s"
                                    % (name, label, op, value, sorted(labels[label])))


class PrometheusRulesTest(ExposedSeriesMixin, BaaTestCase):
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
            used = selectors(f.read())
        self.assertGreater(len(used), 4)
        _, nginx = self.start_stack()
        # baa_requests_total has a row once its route has answered.
        self.assertEqual(nginx.get("/healthz")[0], 200)
        status, _, body = nginx.get("/metrics")
        self.assertEqual(status, 200)
        self.assertSeriesExposed(used, parse_metrics(body.decode()))


class GrafanaDashboardTest(ExposedSeriesMixin, BaaTestCase):
    workers = 1

    def test_dashboard_is_a_grafana_dashboard_over_a_chosen_prometheus(self):
        dash = dashboard()
        self.assertGreaterEqual(dash["schemaVersion"], 39)  # a current Grafana's
        self.assertRegex(dash["uid"], r"^[A-Za-z0-9_-]{1,40}$")
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual((variables["datasource"]["type"], variables["datasource"]["query"]),
                         ("datasource", "prometheus"))
        instance = variables["instance"]
        self.assertEqual(instance["type"], "query")
        self.assertEqual(instance["definition"], 'label_values(up{job="baa"}, instance)')
        self.assertEqual(instance["query"]["query"], instance["definition"])
        self.assertEqual(instance["datasource"], {"type": "prometheus", "uid": "${datasource}"})
        ids = [p["id"] for p in dash["panels"]] + [p["id"] for p in panels(dash)
                                                   if p not in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in panels(dash):
            with self.subTest(panel=p["title"]):
                self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"})
                self.assertTrue(p["targets"], "a panel without a query")
                refs = [t["refId"] for t in p["targets"]]
                self.assertEqual(len(refs), len(set(refs)))
                for t in p["targets"]:
                    self.assertTrue(t["expr"].strip())
                    self.assertEqual(t["datasource"], p["datasource"])
                    # The chosen instances, everywhere.
                    for name, sel in selectors(t["expr"]):
                        self.assertIn('instance=~"$instance"', sel, name)
                pos = p["gridPos"]
                self.assertLessEqual(pos["x"] + pos["w"], 24)

    def test_dashboard_shows_every_series_the_alerts_use(self):
        with open(os.path.join(HERE, "baa-rules.yml")) as f:
            rules = f.read()
        shown = {name for _, _, expr in dashboard_queries(dashboard())
                 for name in re.findall(r"\b(baa_\w+|up)\{", expr)}
        wanted = set(re.findall(r"\b(baa_\w+|up)\{", rules))
        self.assertEqual(wanted - shown, set())

    def test_dashboard_queries_parse(self):
        # promtool parses a rule file's expressions as Prometheus does: one
        # recording rule per query, Grafana's variables given values.
        queries = dashboard_queries(dashboard())
        self.assertGreater(len(queries), 20)
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (title, ref, expr) in enumerate(queries):
            lines += ["      # %s, %s" % (title, ref),
                      "      - record: baa_dashboard:query_%d" % i,
                      "        expr: %s" % json.dumps(grafana_values(expr))]
        work = make_temp_dir("baa-it-grafana-")
        path = os.path.join(work, "dashboard-rules.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        res = promtool("check", "rules", path, cwd=work)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("%d rules found" % len(queries), res.stdout)

    def test_every_series_the_dashboard_uses_is_one_baa_exposes(self):
        queries = dashboard_queries(dashboard())
        used = set().union(*(selectors(expr) for _, _, expr in queries))
        # The internal API's counters exist only with services configured.
        env = self.env(BAA_INTERNAL_LISTEN="127.0.0.1:%d" % free_port(),
                       BAA_SERVICE_KEYS="billing:" + SERVICE_KEY)
        _, nginx = self.start_stack(env)
        self.assertEqual(nginx.get("/healthz")[0], 200)
        status, _, body = nginx.get("/metrics")
        self.assertEqual(status, 200)
        exposed = parse_metrics(body.decode())
        self.assertSeriesExposed(used, exposed)
        # What a panel sums by is a label of what it sums.
        for title, ref, expr in queries:
            labels = set(TARGET_LABELS)
            for name, _ in selectors(expr):
                labels |= set(exposed_sample_labels(exposed, name))
            for by in re.findall(r"\bby \(([^)]*)\)", expr):
                for label in re.split(r"\s*,\s*", by.strip()):
                    with self.subTest(panel=title, ref=ref):
                        self.assertIn(label, labels, "sums by a label its series lack")
