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

Live (@slow): Debian's prometheus, with the shipped prometheus.yml (only
the addresses, the site's certificate and a 1 s interval changed),
scrapes two instances behind the shipped site while wrk sends GET /me
through nginx: what Prometheus says was answered is what wrk counted, the
rate it computes is wrk's, both instances took part; every dashboard
query runs on it, and the rules load and evaluate without firing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from harness import (REPO, SESSION_COOKIE, WRK_COUNT_LUA, Baa, BaaTestCase, Prometheus, SiteNginx,
                     free_port, kill_process_tree, make_temp_dir, mint_session, parse_metrics,
                     parse_wrk_count, register_process, wait_until)
from harness.tags import slow

HERE = os.path.join(REPO, "deploy", "prometheus")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "baa-dashboard.json")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
VERBOSE = os.environ.get("BAA_IT_VERBOSE") == "1"
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


def shipped_scrape_config(site):
    """deploy/prometheus/prometheus.yml for this test's site: the site's
    address (both targets), its name and self-signed certificate, the tree's
    rule file and a SCRAPE_SECONDS interval; the job, its targets' labels and
    the relabelling are the shipped ones, untouched."""
    with open(os.path.join(HERE, "prometheus.yml")) as f:
        text = f.read()
    indent = re.search(r"^( *)server_name: baa\.example\.org$", text, re.M).group(1)
    changes = [
        ("scrape_interval: 15s", "scrape_interval: %ds" % SCRAPE_SECONDS, 1),
        ("evaluation_interval: 15s", "evaluation_interval: %ds" % SCRAPE_SECONDS, 1),
        ("/etc/prometheus/baa-rules.yml", os.path.join(HERE, "baa-rules.yml"), 1),
        ('"127.0.0.1:443"', '"127.0.0.1:%d"' % site.https_port, 2),
        ("server_name: baa.example.org", "server_name: 127.0.0.1\n%sca_file: %s"
         % (indent, os.path.join(site.state, "nginx", "cert.pem")), 1),
    ]
    for old, new, count in changes:
        if text.count(old) != count:
            raise AssertionError("prometheus.yml has %r %d times, not %d: change the test with it"
                                 % (old, text.count(old), count))
        text = text.replace(old, new)
    return text


ME = 'baa_requests_total{job="baa", route="me", status="200"}'
SCRAPE_SECONDS = 1  # the test's scrape and rule evaluation interval (shipped: 15 s)
WRK_SECONDS = 8
WRK_CONNECTIONS = 8
# The rate Prometheus computes over the run itself: a window from wrk's
# start to its end, so that it averages the same seconds wrk's mean does.
# (A window in the middle of the run left out wrk's ramp-up and tail and
# ran 9.7% above wrk's mean once in CI on a busy machine.)
RATE_WINDOW = WRK_SECONDS
# What is left: the edges of the window, which Prometheus extrapolates from
# the first and last scrapes inside it, each up to one scrape interval from
# its edge: up to that interval over the window either way (-8.7% once, in
# the sanitizer round).
RATE_TOLERANCE = SCRAPE_SECONDS / RATE_WINDOW


@slow("a real Prometheus scraping two instances while wrk runs for %d s" % WRK_SECONDS)
class LivePrometheusTest(ExposedSeriesMixin, BaaTestCase):
    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instances = []
        for _ in range(2):
            inst = Baa(make_temp_dir("baa-it-serve-"))
            cls.addClassCleanup(inst.stop)
            inst.serve(cls.env(BAA_INTERNAL_LISTEN="127.0.0.1:%d" % free_port(),
                               BAA_SERVICE_KEYS="billing:" + SERVICE_KEY))
            cls.instances.append(inst)
        cls.site = SiteNginx([inst.env["BAA_LISTEN"] for inst in cls.instances])
        cls.addClassCleanup(cls.site.stop)
        cls.site.start()
        user_id = int(cls.pg.psql_value(
            "INSERT INTO users (spotify_id, display_name, spotify_token, token_expires_at,"
            " authorized_at) VALUES ('prometheus', 'Prometheus', 'T', now() + interval '1 hour',"
            " now()) RETURNING id", db=cls.db))
        cls.cookie = "%s=%s" % (SESSION_COOKIE, mint_session(cls.pg, cls.db, user_id))
        # Both instances have a /me row before Prometheus's first scrape.
        wait_until(lambda: cls.me() == 200 and all(cls.site.counter(i) for i in (1, 2)), 10,
                   interval=0, message="GET /me did not reach both instances")
        cls.prom = Prometheus(shipped_scrape_config(cls.site))
        cls.addClassCleanup(cls.prom.stop)
        cls.prom.start()
        wait_until(lambda: sorted(t["health"] for t in cls.prom.targets()) == ["up", "up"], 20,
                   interval=0.2, message="prometheus did not scrape both targets")

    @classmethod
    def me(cls):
        return cls.site.get("/me", headers={"Cookie": cls.cookie})[0]

    def context(self):
        return "\n--- targets ---\n%r\n--- prometheus log (tail) ---\n%s" % (
            [(t["labels"], t["health"], t["lastError"]) for t in self.prom.targets()],
            self.prom.log()[-2000:])

    def scraped(self, at=None):
        """{instance_number: /me answers} as Prometheus has them (at: Unix time)."""
        return {labels["instance_number"]: value for labels, value in self.prom.vector(ME, at)}

    def counted(self):
        """{instance_number: /me answers} as the instances count them now."""
        return {str(i): self.site.counter(i) for i in (1, 2)}

    def wait_scraped(self):
        """Once Prometheus has scraped what the instances count: -> (that, when)."""
        want = self.counted()
        seen = {}

        def caught_up():
            seen["now"] = self.scraped()
            return seen["now"] == want
        wait_until(caught_up, 10, interval=0.2, message="prometheus has %r, baa counts %r%s"
                   % (seen, want, self.context()))
        return want, time.time()

    def run_wrk(self):
        argv = [WRK, "-t2", "-c%d" % WRK_CONNECTIONS, "-d%ds" % WRK_SECONDS, "--timeout", "3s",
                "-s", WRK_COUNT_LUA, "-H", "Cookie: " + self.cookie,
                "https://127.0.0.1:%d/me" % self.site.https_port]
        started = time.time()
        proc = register_process(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                 text=True, start_new_session=True))
        try:
            out, err = proc.communicate(timeout=WRK_SECONDS + 30)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc)
            self.fail("wrk did not finish in %d s" % (WRK_SECONDS + 30))
        stats = parse_wrk_count(out)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIsNotNone(stats, out + err)
        stats["output"] = out + err
        return started, stats

    def test_prometheus_counts_what_wrk_sent_and_its_rate(self):
        before, t0 = self.wait_scraped()
        self.assertEqual(self.scraped(t0), before)
        started, wrk = self.run_wrk()
        time.sleep(0.5)  # the answers in flight when wrk stopped, counted
        after, t1 = self.wait_scraped()
        # What Prometheus has before and after the run is what the instances counted.
        self.assertEqual(self.scraped(t0), before)
        self.assertEqual(self.scraped(t1), after)

        sent = wrk["requests"]
        errors = {k: wrk[k] for k in ("non200", "connect", "read", "write", "timeout", "status")}
        self.assertEqual(set(errors.values()), {0}, wrk["output"])
        self.assertGreater(sent, 500, wrk["output"])
        share = {n: after[n] - before[n] for n in sorted(after)}
        answered = sum(share.values())
        seconds = wrk["duration_us"] / 1e6
        rate = sum(v for _, v in self.prom.vector(
            "sum(rate(%s[%ds]))" % (ME, RATE_WINDOW), at=started + RATE_WINDOW))
        summary = ("wrk: %d answers in %.2f s (%.1f/s); Prometheus: %d more /me answers (by "
                   "instance %r), rate over %d s of the run %.1f/s (%+.1f%%)"
                   % (sent, seconds, sent / seconds, answered, share, RATE_WINDOW, rate,
                      100 * (rate / (sent / seconds) - 1)))
        if VERBOSE:
            print("prometheus vs wrk: " + summary, file=sys.stderr)
        # Both instances served the run.
        for n, v in share.items():
            self.assertGreater(v, 0, "instance %s served none of it: %s" % (n, summary))
        # wrk counts only the answers it read: a request in flight on each
        # connection when it stopped was answered (and counted by baa) but
        # not by wrk. Nothing else asks for /me.
        self.assertGreaterEqual(answered, sent, summary)
        self.assertLessEqual(answered - sent, WRK_CONNECTIONS, summary)
        # Prometheus's rate over the run is wrk's mean rate.
        self.assertAlmostEqual(rate, sent / seconds, delta=RATE_TOLERANCE * sent / seconds,
                               msg=summary)

    def test_every_dashboard_query_runs_on_prometheus(self):
        instances = sorted(self.prom.label_values("instance", 'up{job="baa"}'))
        self.assertEqual(len(instances), 2, instances)
        # Grafana's value of $instance: "All" (.+), or the chosen instances,
        # regex-escaped, with PromQL's string escaping of the backslashes.
        chosen = "(%s)" % "|".join(re.escape(i).replace("\\", "\\\\") for i in instances)
        self.assertEqual(len(self.prom.vector('up{job="baa", instance=~"%s"}' % chosen)), 2)
        # $__rate_interval: at least four scrape intervals, as Grafana makes it.
        for title, ref, expr in dashboard_queries(dashboard()):
            for instance in (".+", chosen):
                query = grafana_values(expr, rate_interval="4s", instance=instance)
                with self.subTest(panel=title, ref=ref, instance=instance):
                    doc = self.prom.query(query)
                    self.assertEqual(doc["status"], "success", "%s: %s" % (query, doc))
                    # Every series it selects is one Prometheus has (statuses
                    # appear as traffic comes: a run without 5xx has none).
                    for name, sel in selectors(query):
                        if "status=" in sel:
                            continue
                        self.assertTrue(self.prom.vector("count(%s{%s})" % (name, sel)),
                                        "no %s{%s} in Prometheus" % (name, sel))

    def test_rules_load_and_stay_quiet(self):
        def evaluated():
            groups = self.prom.api("rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r["health"] != "unknown" for r in rules) else None
        rules = wait_until(evaluated, 10, interval=0.2, message="rules not evaluated" + self.context())
        with open(os.path.join(HERE, "baa-rules.yml")) as f:
            self.assertEqual(len(rules), f.read().count("- alert:"))
        for r in rules:
            with self.subTest(rule=r["name"]):
                self.assertEqual(r["health"], "ok", r)
                self.assertEqual(r["state"], "inactive", r)
