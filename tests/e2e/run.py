#!/usr/bin/python3
"""Run baa's end-to-end browser test (login.spec.mjs) against a real stack.

usage: /usr/bin/python3 tests/e2e/run.py [--screenshots DIR]

Starts, in temp dirs and on free ports: a throwaway PostgreSQL cluster
(tests/integration/harness/) with a fresh database (`baa resetdb`), the
fake Spotify (tests/fake_spotify) approving "Ada Lovelace", over HTTPS with
the harness's throwaway CA (baa trusts it through SPOTIFY_CA_FILE; Chromium
ignores certificate errors, as it does for nginx's), `baa serve` on a
unix socket, and nginx from the shipped template nginx/baa.conf.in (TLS
with a self-signed certificate, rendered as scripts/run-local does). Then
Chromium, driven by playwright-core, logs in through the page (also as
a second device, to end one device's session from the other), and
everything is torn down again, also on failure, SIGINT or SIGTERM.

Prints `ok NAME` / `FAIL NAME` (+ indented details) per test case, the
screenshot paths (`# screenshot: PATH`), and finally one line
`N passed, N failed`. Exit status 0 iff all passed.

Needs: chromium (Debian package), node >= 20 and npm (`npm ci` is run in
tests/e2e when node_modules is missing), nginx, openssl, PostgreSQL.

Environment:
  BAA_BIN              the baa binary (default <repo>/build/src/baa)
  SANITIZER_LOG_DIR    baa gets ASAN/UBSAN options writing there; a report
                       written during this run fails the run
  BAA_E2E_SCREENSHOTS  screenshot dir (default: a new /tmp/baa-e2e-screenshots-*)
  BAA_E2E_CHROMIUM     browser binary (default /usr/bin/chromium)
  BAA_E2E_TIMEOUT      seconds before the whole run is aborted (default 160)
  BAA_IT_KEEP_TMP      keep the temp dirs (logs, rendered nginx.conf)
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
import hooks  # noqa: E402

CHROMIUM = os.environ.get("BAA_E2E_CHROMIUM", "/usr/bin/chromium")
SPEC = os.path.join(HERE, "login.spec.mjs")
USER_ID = "ada-lovelace-e2e"
DISPLAY_NAME = "Ada Lovelace"
TOTAL_TIMEOUT = int(float(os.environ.get("BAA_E2E_TIMEOUT", "160")))
NODE_TIMEOUT = 120  # login.spec.mjs gives up by itself after 100 s
NPM_TIMEOUT = 90


class Aborted(BaseException):
    """SIGINT, SIGTERM or the run's time limit: stop and tear down."""


class SetupError(Exception):
    """The environment could not be set up (not a failure of the code under test)."""


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("ok %s" % name, flush=True)

    def fail(self, name, detail=""):
        self.failed += 1
        print("FAIL %s" % name, flush=True)
        if detail:
            print("\n".join("  " + line for line in detail.rstrip().splitlines()), flush=True)

    def check(self, name, problems):
        if problems:
            self.fail(name, "\n".join(problems))
        else:
            self.ok(name)


def log(msg):
    print("# " + msg, flush=True)


def tail(text, n=40):
    return "\n".join(text.rstrip().splitlines()[-n:])


# ---------------------------------------------------------------------------
# prerequisites


def check_prerequisites():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise SetupError("Chromium not found at %s. Install it (Debian 12): "
                         "apt-get update && apt-get install -y --no-install-recommends chromium "
                         "(or set BAA_E2E_CHROMIUM to a Chromium binary)" % CHROMIUM)
    node = shutil.which("node")
    if not node:
        raise SetupError("node not found in PATH: install Node.js >= 20 (and npm)")
    res = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    m = re.match(r"v(\d+)\.", res.stdout.strip())
    if not m or int(m.group(1)) < 20:
        raise SetupError("node %s is too old: playwright-core needs Node.js >= 20" % res.stdout.strip())
    for tool in (harness.NGINX_BIN, shutil.which("openssl")):
        if not tool or not os.access(tool, os.X_OK):
            raise SetupError("missing tool: %s (nginx and openssl are needed)" % (tool or "openssl"))
    try:
        harness.require_baa()
    except AssertionError as exc:
        raise SetupError(str(exc))
    if not os.path.isfile(os.path.join(HERE, "node_modules", "playwright-core", "package.json")):
        npm = shutil.which("npm")
        if not npm:
            raise SetupError("npm not found in PATH, and tests/e2e/node_modules is missing")
        log("installing tests/e2e/node_modules (npm ci)")
        try:
            res = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                                 capture_output=True, text=True, timeout=NPM_TIMEOUT,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SetupError("npm ci in %s took more than %d s" % (HERE, NPM_TIMEOUT))
        if res.returncode != 0:
            raise SetupError("npm ci in %s failed (%d):\n%s%s" % (HERE, res.returncode, res.stdout, res.stderr))
    return node


# ---------------------------------------------------------------------------
# the stack


def start_cluster(attempts=3):
    """harness.cluster(), again if its port was taken before the server bound it.

    PostgresCluster picks 5432 (or a free port) and binds it only later, so
    another run starting a cluster at the same moment can win the port.
    A failed start leaves no cluster behind: the next call tries a new port.
    """
    for attempt in range(attempts):
        try:
            return harness.cluster()
        except harness.HarnessError as exc:
            if "already in use" not in str(exc) or attempt == attempts - 1:
                raise
            log("PostgreSQL lost its port to another process, retrying")


class Stack:
    def __init__(self):
        self.state = None
        self.base_url = None
        self.fake = None
        self.db = None
        self.hooks = None
        self.baa = None
        self.nginx = None

    # -- nginx from the shipped configuration, as scripts/run-local renders it --
    def prepare_state(self):
        # make_temp_dir: mode 0777 under /tmp, so nginx's workers (nobody) get in.
        self.state = harness.make_temp_dir("baa-e2e-")
        os.makedirs(os.path.join(self.state, "run"), mode=0o755)
        # Rendered now, started once baa is up: baa's redirect URI needs the port.
        self.nginx = harness.SiteNginx(["unix:" + self.socket()])
        self.base_url = "https://127.0.0.1:%d" % self.nginx.https_port

    def socket(self):
        return os.path.join(self.state, "run", "baa.sock")

    def start_nginx(self):
        try:
            self.nginx.start(timeout=15)
        except AssertionError:
            raise SetupError("GET %s/healthz through nginx did not answer 200 within 15 s\n"
                             "--- nginx error log ---\n%s\n--- baa log ---\n%s" % (
                                 self.base_url, tail(self.nginx.error_log()),
                                 tail(self.baa.log() if self.baa else "")))

    def stop_nginx(self):
        if self.nginx is not None:
            self.nginx.stop()

    # -- database, fake Spotify, baa ----------------------------------------
    def start(self):
        self.prepare_state()
        redirect_uri = self.base_url + "/callback"
        t0 = time.monotonic()
        start_cluster()
        db = harness.db_name_for("e2e_login")
        cli = harness.Baa(harness.make_temp_dir("baa-e2e-cli-"))
        res = cli.run(["resetdb"], env=harness.base_env(db), timeout=60)
        if res.returncode != 0:
            raise SetupError("baa resetdb failed (%d):\n%s%s" % (res.returncode, res.stdout, res.stderr))
        self.db = db
        log("PostgreSQL and database ready in %.1f s" % (time.monotonic() - t0))

        self.fake = harness.start_fake_spotify(redirect_uri, user_id=USER_ID,
                                               display_name=DISPLAY_NAME)

        env = harness.base_env(db, listen=self.socket())
        env.update(harness.spotify_env(redirect_uri, self.fake.url))
        # The page's "Allow playlist access" asks for this scope when needed.
        env["SPOTIFY_SCOPES_ALLOWED"] = "playlist-read-private"
        self.baa = harness.Baa(harness.make_temp_dir("baa-e2e-serve-"))
        try:
            self.baa.serve(env, timeout=15)
        except AssertionError as exc:
            raise SetupError(str(exc))
        self.start_nginx()
        self.hooks = hooks.Hooks(harness.cluster(), self.db, self.fake)
        log("stack up at %s (fake Spotify %s, state %s, nginx %s)" % (
            self.base_url, self.fake.url, self.state, self.nginx.state))

    def stop(self):
        for fn in (self.hooks.stop if self.hooks else None, self.stop_nginx,
                   self.baa.stop if self.baa else None,
                   self.fake.stop if self.fake else None):
            if fn is None:
                continue
            try:
                fn()
            except Exception as exc:
                print("# teardown: %r" % (exc,), file=sys.stderr)


# ---------------------------------------------------------------------------
# the browser test


def kill_browser_leftovers(marker):
    """Kill processes still running with our (unique) profile dir on their command line.

    Playwright starts Chromium in a process group of its own; if node was
    killed, its browser would outlive it. The second device's browser has
    its profile at the same path + "-device-b", so the marker finds it too.
    """
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run_browser(node, stack, shot_dir, report):
    work = harness.make_temp_dir("baa-e2e-browser-")
    profile = os.path.join(work, "profile")
    os.mkdir(profile)
    results_file = os.path.join(work, "results.json")
    output_file = os.path.join(work, "node-output.log")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": work,
        "XDG_CONFIG_HOME": os.path.join(work, "config"),
        "XDG_CACHE_HOME": os.path.join(work, "cache"),
        "TMPDIR": work,
        "LANG": "C.UTF-8",
        "BAA_E2E_URL": stack.base_url,
        "BAA_E2E_FAKE_URL": stack.fake.url,
        "BAA_E2E_DISPLAY_NAME": DISPLAY_NAME,
        "BAA_E2E_SCREENSHOTS": shot_dir,
        "BAA_E2E_USER_DATA_DIR": profile,
        "BAA_E2E_RESULTS": results_file,
        "BAA_E2E_CHROMIUM": CHROMIUM,
        "BAA_E2E_HOOKS_URL": stack.hooks.url,
    }
    t0 = time.monotonic()
    with open(output_file, "wb") as out:
        proc = harness.register_process(subprocess.Popen(
            [node, SPEC], cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True))
        timed_out = False
        try:
            proc.wait(timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            harness.kill_process_tree(proc)
            kill_browser_leftovers(profile)
    log("browser test took %.1f s" % (time.monotonic() - t0))
    output = harness.read_text(output_file)
    try:
        with open(results_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = None
    if data is None or not data.get("results"):
        why = "was killed after %d s" % NODE_TIMEOUT if timed_out else "exited with %s" % proc.returncode
        report.fail("browser_test", "node %s %s and wrote no results\n--- its output ---\n%s" % (
            SPEC, why, tail(output, 60)))
        return None
    failed = False
    for r in data["results"]:
        if r["ok"]:
            report.ok(r["name"])
        else:
            failed = True
            report.fail(r["name"], r.get("detail", ""))
    if timed_out or (proc.returncode != 0 and not failed):
        report.fail("browser_test", "node exited with %s%s\n--- its output ---\n%s" % (
            proc.returncode, " (killed after %d s)" % NODE_TIMEOUT if timed_out else "", tail(output, 60)))
    # Anything node said besides the results (e.g. browser warnings) helps with a failure.
    extra = [l for l in output.splitlines()
             if l.strip() and not re.match(r"(ok |FAIL |  |# screenshot: |\d+ passed, \d+ failed$)", l)]
    if failed and extra:
        print("  --- other output of node ---\n" + "\n".join("  " + l for l in extra[-40:]))
    return data


def server_side_checks(stack, report, browser_data):
    """What the servers saw, checked after the browser is done."""
    if browser_data is None:
        return
    problems = []
    try:
        stats = stack.fake.stats()
        # The first login; devices A and B, and B twice more; the login
        # after that, the renewal, the scope step-up, and the login
        # development mode refuses.
        if stats.get("authorize") != 9:
            problems.append("the fake's /authorize was called %s times, expected 9" % stats.get("authorize"))
        if stats.get("token_authorization_code") != 9:
            problems.append("the fake exchanged %s codes, expected 9" % stats.get("token_authorization_code"))
        if not stats.get("me"):
            problems.append("baa never read the profile (/v1/me) at the fake")
    except Exception as exc:
        problems.append("could not read the fake's stats: %r" % (exc,))
    records = []
    for line in stack.baa.log_lines():
        try:
            records.append(harness.parse_logfmt(line))
        except ValueError:
            problems.append("baa log line is not logfmt: %r" % line)
    # Each way a session ends: the "Log out" button, "End session" on
    # the other device's row and on this device's own, "Log out everywhere".
    expected = {"login": 8, "spotify_access_denied": 1, "logout": 1, "session_revoked": 2,
                "logout_everywhere": 1}
    for event, n in expected.items():
        seen = sum(1 for r in records if r.get("event") == event)
        if seen != n:
            problems.append("baa logged %d event=%s lines, expected %d" % (seen, event, n))
    if problems:
        problems.append("--- baa log ---\n" + tail(stack.baa.log()))
    report.check("servers_saw_eight_logins_one_refusal_and_each_logout", problems)

    errors = [l for l in stack.nginx.error_log().splitlines()
              if re.search(r"\[(error|crit|alert|emerg)\]", l)]
    report.check("nginx_logged_no_errors", errors)


def sanitizer_check(before, report):
    log_dir = os.environ.get("SANITIZER_LOG_DIR")
    if not log_dir:
        return
    new = sorted(set(os.listdir(log_dir)) - before) if os.path.isdir(log_dir) else []
    detail = []
    for f in new:
        detail.append("===== %s =====" % f)
        detail.append(harness.read_text(os.path.join(log_dir, f))[:20000].rstrip())
    report.check("sanitizer_reports_are_absent", detail)


# ---------------------------------------------------------------------------


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshots", default=os.environ.get("BAA_E2E_SCREENSHOTS"),
                        help="directory for the screenshots (default: a new temp dir)")
    args = parser.parse_args(argv)

    def on_signal(signum, _frame):
        raise Aborted("signal %d" % signum)

    def on_alarm(_signum, _frame):
        raise Aborted("the run exceeded %d s" % TOTAL_TIMEOUT)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TOTAL_TIMEOUT)

    t0 = time.monotonic()
    report = Report()
    stack = Stack()
    sanitizer_dir = os.environ.get("SANITIZER_LOG_DIR")
    if sanitizer_dir:
        os.makedirs(sanitizer_dir, exist_ok=True)
    before = set(os.listdir(sanitizer_dir)) if sanitizer_dir else set()
    shot_dir = None
    data = None
    try:
        try:
            node = check_prerequisites()
            if args.screenshots:
                shot_dir = os.path.abspath(args.screenshots)
                os.makedirs(shot_dir, exist_ok=True)
            else:
                shot_dir = tempfile.mkdtemp(prefix="baa-e2e-screenshots-")
            os.chmod(shot_dir, 0o755)
            stack.start()
        except (SetupError, harness.HarnessError) as exc:
            report.fail("setup", str(exc))
        else:
            data = run_browser(node, stack, shot_dir, report)
            server_side_checks(stack, report, data)
    except Aborted as exc:
        report.fail("run", "aborted: %s" % exc)
    except Exception as exc:
        import traceback
        report.fail("run", "run.py internal error: %r\n%s" % (exc, traceback.format_exc()))
    finally:
        # A second signal must not cut the teardown short.
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        harness.cleanup_all()
    if stack.baa is not None:
        sanitizer_check(before, report)
    for shot in (data or {}).get("screenshots", []):
        print("# screenshot: %s" % shot)
    print("# %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (report.passed, report.failed), flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
