"""pg_auto_failover (Debian's postgresql-15-auto-failover, pg_autoctl 2.0):
a monitor and two PostgreSQL nodes with synchronous replication on
loopback, run as the user the harness runs PostgreSQL as, in a temp dir.

Every `pg_autoctl` is started in a session of its own and registered, and
the postgres processes it starts are found again at cleanup by their
working directory (PostgreSQL's processes chdir to their data directory,
and its children leave the keeper's process group with setsid), so a
failing or interrupted run leaves none behind.

What pg_auto_failover sets and the harness relies on:
  - the primary runs with synchronous_commit = on and
    synchronous_standby_names = 'ANY 1 (pgautofailover_standby_N)': a
    commit returns once the standby has it (pg_stat_replication's
    sync_state says `quorum`), so what a client saw committed survives a
    failover;
  - while its standby is gone (after a failover, until the old primary
    rejoins), the new primary is in `wait_primary`: synchronous_standby_names
    is emptied and writes go on without a standby (availability first:
    pg_auto_failover's choice for two nodes);
  - the monitor decides. Its health checks are tuned down here (see
    MONITOR_SETTINGS) so that a dead primary is failed over in seconds
    rather than its defaults' ~30 s.

kill -9 of the primary's postmaster: the node's keeper (`pg_autoctl run`)
sees postgres gone and starts it again, as the primary, within one to a
few seconds, racing the monitor, whose health checks (as tuned here) take
~2.5 s to find the node unhealthy. When the keeper wins, the monitor
usually never notices and the same node goes on as the primary (about a
third of the runs here; once the monitor failed it over all the same a
few seconds after the restart). When the monitor wins, it assigns the standby
`prepare_promotion` and the old primary `demote_timeout`; the restarted
old primary may take connections for a moment (once ~0.2 s, ~3.5 s
after the kill, primary() notes it in both_writable), but a commit there
waits for its synchronous standby, which is being promoted and never
answers it, so none is acknowledged (test_failover finds every
acknowledged login on the new primary); its keeper then stops it and it
rejoins as the new primary's standby (`demoted`, `catchingup`, pg_rewind,
`secondary`). A promoted node is kept read-only (sessions read-only) until
the old primary is demoted or primary_demote_timeout has passed, which is
why writable() asks transaction_read_only as libpq's
target_session_attrs=read-write does. kill_primary_postmaster(pause_keeper=True)
pauses the keeper too, as when the whole node is gone: the monitor then
always fails over, after primary_demote_timeout.
"""

import getpass
import os
import signal
import subprocess
import time

from .base import IS_ROOT, UNPRIVILEGED_USER, HarnessError, as_unprivileged, free_port, \
    give_to_nobody, read_text, wait_until
from .env import db_env
from .postgres import PG_BIN, PSQL
from .processes import kill_process_tree, make_temp_dir, register_cleanup, register_process

PG_AUTOCTL = os.environ.get("BAA_IT_PG_AUTOCTL", "/usr/bin/pg_autoctl")

# The monitor's settings (pgautofailover.*, milliseconds) for a failover
# within seconds of a primary's death; pg_auto_failover 2.0's defaults are
# in the comments. A node is unhealthy after a failed health check and its
# retry (timeout + retry_delay + timeout) once node_considered_unhealthy_timeout
# has passed since its keeper last reported; the primary is then demoted
# (or, unreachable, given up on after primary_demote_timeout) and the
# standby promoted.
MONITOR_SETTINGS = {
    "health_check_period": 1000,               # 5000
    "health_check_timeout": 1000,              # 5000
    "health_check_max_retries": 1,             # 2
    "health_check_retry_delay": 500,           # 2000
    "node_considered_unhealthy_timeout": 3000,  # 20000
    "primary_demote_timeout": 5000,            # 30000
}


class FormationNode:
    """One data node: its name, port and data directory."""

    def __init__(self, name, port, pgdata):
        self.name = name
        self.port = port
        self.pgdata = pgdata
        self.proc = None  # its `pg_autoctl run`

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def postmaster_pid(self):
        """The postmaster's pid from postmaster.pid, or None while it is down."""
        first = read_text(os.path.join(self.pgdata, "postmaster.pid")).split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    def __repr__(self):
        return "%s(%s)" % (self.name, self.address)


class AutoFailoverFormation:
    """A pg_auto_failover monitor and two data nodes, node1 the first
    primary, on 127.0.0.1 with free ports, `--auth trust` and `--no-ssl`.

    The nodes hold the database `db`, owned by the role `superuser` (a
    superuser, as the harness cluster's is), which baa is given as
    POSTGRES_USER; password is what baa gets as POSTGRES_PW (trust does
    not ask for it, it is there because baa requires one). Stopped at
    cleanup, or by stop().
    """

    def __init__(self, db="baa", superuser="baa", password="pw-unused-with-trust"):
        self.db = db
        self.superuser = superuser
        self.password = password
        self.base = make_temp_dir("baa-it-paf-")
        give_to_nobody(self.base)
        self.sockdir = os.path.join(self.base, "sock")
        os.mkdir(self.sockdir)
        give_to_nobody(self.sockdir)
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        mport, p1, p2 = sorted(ports)
        self.monitor = FormationNode("monitor", mport, os.path.join(self.base, "monitor"))
        self.nodes = [FormationNode("node%d" % (i + 1), p, os.path.join(self.base, "node%d" % (i + 1)))
                      for i, p in enumerate((p1, p2))]
        # the monitor's superuser: initdb names it after the user running it
        self.os_user = UNPRIVILEGED_USER if IS_ROOT else getpass.getuser()
        self._stopped = False
        # time.time() of each primary() that found both nodes taking writes
        self.both_writable = []
        register_cleanup(self._cleanup)

    # -- processes -------------------------------------------------------
    def _env(self):
        """pg_autoctl keeps its configuration and state under XDG_*; PGHOST
        and PG_REGRESS_SOCK_DIR put the unix sockets in the temp dir (the
        default, /var/run/postgresql, is not the unprivileged user's)."""
        env = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
        env.update(HOME=self.base, XDG_CONFIG_HOME=os.path.join(self.base, "config"),
                   XDG_DATA_HOME=os.path.join(self.base, "share"),
                   XDG_RUNTIME_DIR=os.path.join(self.base, "run"),
                   PGHOST=self.sockdir, PG_REGRESS_SOCK_DIR=self.sockdir,
                   PG_CONFIG=os.path.join(PG_BIN, "pg_config"),
                   PATH=PG_BIN + ":/usr/bin:/bin")
        return env

    def _argv(self, args):
        # runuser resets HOME; env(1) sets everything again as the user.
        assignments = ["%s=%s" % kv for kv in sorted(self._env().items())]
        return as_unprivileged(["env", "-i"] + assignments + [PG_AUTOCTL] + list(args))

    def autoctl(self, args, timeout=120):
        """Run `pg_autoctl args...` to completion; -> CompletedProcess."""
        proc = register_process(subprocess.Popen(
            self._argv(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=self.base, start_new_session=True))
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc)
            out, _ = proc.communicate()
            raise HarnessError("pg_autoctl %s did not finish within %ss:\n%s" % (
                " ".join(args), timeout, out[-4000:]))
        return subprocess.CompletedProcess(args, proc.returncode, out, "")

    def _create(self, args, what):
        res = self.autoctl(args)
        if res.returncode != 0:
            raise HarnessError("pg_autoctl create %s failed (%d):\n%s" % (
                what, res.returncode, res.stdout[-4000:]))

    def _run(self, node):
        """`pg_autoctl run` for node in the background, its output to a log."""
        log = open(os.path.join(self.base, node.name + ".log"), "ab")
        try:
            node.proc = register_process(subprocess.Popen(
                self._argv(["run", "--pgdata", node.pgdata]), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd=self.base, start_new_session=True))
        finally:
            log.close()

    @property
    def monitor_uri(self):
        return "postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable" % self.monitor.port

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout=120):
        """Monitor, node1 (`single` until node2 joins, then primary), node2 (its synchronous standby); returns
        once the monitor sees primary/secondary and the standby is sync."""
        if not os.access(PG_AUTOCTL, os.X_OK):
            raise HarnessError("%s not found: run scripts/setup-debian" % PG_AUTOCTL)
        pgctl = os.path.join(PG_BIN, "pg_ctl")
        common = ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", pgctl]
        self._create(["create", "monitor", "--pgdata", self.monitor.pgdata, "--pgport",
                      str(self.monitor.port), "--listen", "127.0.0.1"] + common, "monitor")
        self._run(self.monitor)
        wait_until(lambda: self._monitor_answers(), 30, interval=0.2,
                   message="the pg_auto_failover monitor did not answer:\n" + self.log("monitor"))
        self.tune_monitor()
        for i, node in enumerate(self.nodes):
            self._create(["create", "postgres", "--pgdata", node.pgdata, "--pgport", str(node.port),
                          "--listen", "127.0.0.1", "--name", node.name, "--monitor", self.monitor_uri,
                          "--dbname", self.db, "--username", self.superuser] + common, node.name)
            self._run(node)
            if i == 0:
                self.wait_states({node.name: "single"}, timeout)
        self.wait_ready(timeout)
        return self

    def _monitor_answers(self):
        return self.monitor_psql("SELECT 1", check=False).returncode == 0

    def tune_monitor(self, settings=None):
        for name, value in (settings or MONITOR_SETTINGS).items():
            self.monitor_psql("ALTER SYSTEM SET pgautofailover.%s = %d" % (name, value), superuser=True)
        self.monitor_psql("SELECT pg_reload_conf()", superuser=True)

    def wait_ready(self, timeout=120):
        """One primary, one secondary, settled (reported = assigned), and
        the standby synchronous on the primary. -> the primary's node."""
        names = [n.name for n in self.nodes]

        def settled():
            states = self.states()
            roles = sorted(states.get(n, ("", ""))[0] for n in names)
            if roles != ["primary", "secondary"] or any(r != g for r, g in states.values()):
                return None
            primary = self.node_named(next(n for n in names if states[n][0] == "primary"))
            return primary if self.sync_states(primary) in (["quorum"], ["sync"]) else None
        return wait_until(settled, timeout, interval=0.2,
                          message="the formation did not settle within %ss: %r\n%s" % (
                              timeout, self.states_or_error(), self.logs_tail()))

    def wait_states(self, wanted, timeout):
        """Until the monitor reports and assigns wanted {node name: state}."""
        wait_until(lambda: all(self.states().get(n) == (s, s) for n, s in wanted.items()), timeout,
                   interval=0.2, message="states %r not reached within %ss: %r\n%s" % (
                       wanted, timeout, self.states_or_error(), self.logs_tail()))

    def stop(self):
        """Every pg_autoctl (SIGTERM: each stops its postgres), then anything left."""
        if self._stopped:
            return
        self._stopped = True
        procs = [n.proc for n in self.nodes + [self.monitor] if n.proc is not None]
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)  # a paused keeper
                    os.killpg(p.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self._cleanup()

    def _cleanup(self):
        """SIGKILL every process started by pg_autoctl here: the keepers'
        groups, then whatever runs in the formation's directory (postgres
        and its children, which setsid out of the group)."""
        for node in self.nodes + [self.monitor]:
            if node.proc is not None:
                kill_process_tree(node.proc)
        for _ in range(3):
            left = self._processes_here()
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.2)

    def _processes_here(self):
        me = os.getpid()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                cwd = os.readlink("/proc/%s/cwd" % entry)
            except OSError:
                continue
            if cwd == self.base or cwd.startswith(self.base + "/"):
                out.append(int(entry))
        return out

    # -- queries -----------------------------------------------------------
    def psql(self, node, sql, db=None, check=True, timeout=10):
        """sql on a data node (a FormationNode or "127.0.0.1:PORT") as the
        superuser; -> stdout (unaligned, tuples only), or the
        CompletedProcess with check=False."""
        port = node.port if isinstance(node, FormationNode) else int(str(node).rsplit(":", 1)[1])
        return self._psql(port, self.superuser, db or self.db, sql, check, timeout)

    def monitor_psql(self, sql, superuser=False, check=True, timeout=10):
        """sql on the monitor's pg_auto_failover database, as autoctl_node
        (what the keepers use) or as its superuser."""
        user = self.os_user if superuser else "autoctl_node"
        return self._psql(self.monitor.port, user, "pg_auto_failover", sql, check, timeout)

    def _psql(self, port, user, db, sql, check, timeout):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "3"
        cmd = [PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(port), "-U", user, "-d", db, "-c", sql]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                 timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            res = subprocess.CompletedProcess(cmd, -1, "", "psql timed out after %ss" % timeout)
        if not check:
            return res
        if res.returncode != 0:
            raise HarnessError("psql on port %d failed (%d) on %r:\n%s" % (port, res.returncode, sql, res.stderr))
        return res.stdout

    def states(self):
        """{node name: (reported state, assigned state)} per the monitor ({} if it does not answer)."""
        res = self.monitor_psql("SELECT nodename, reportedstate, goalstate FROM pgautofailover.node",
                                check=False)
        if res.returncode != 0:
            return {}
        return {n: (r, g) for n, r, g in (l.split("|") for l in res.stdout.splitlines() if l)}

    def states_or_error(self):
        return self.states() or "(the monitor does not answer)"

    def node_named(self, name):
        return next(n for n in self.nodes if n.name == name)

    def node_at(self, address):
        return next(n for n in self.nodes if n.address == address)

    def writable(self, node):
        """True/False: node takes writes; None: it does not answer. As
        libpq's target_session_attrs=read-write asks: not in recovery, and
        sessions not read-only (pg_auto_failover keeps a promoted node
        read-only until the old primary has been demoted)."""
        res = self.psql(node, "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool",
                        db="postgres", check=False, timeout=5)
        if res.returncode != 0:
            return None
        return res.stdout.strip() == "f"

    def node_view(self, node):
        """What a node says of itself: "primary"/"standby", "rw"/"ro" (its
        sessions' default_transaction_read_only, which pg_auto_failover
        sets on a node it has not let take writes yet) and its
        synchronous_standby_names, as one string; "down" when it does not
        answer. For the timeline a failing test prints."""
        res = self.psql(node, "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END"
                              " || ' ' || CASE WHEN current_setting('transaction_read_only')::bool"
                              " THEN 'ro' ELSE 'rw' END || ' sync=' ||"
                              " quote_literal(current_setting('synchronous_standby_names'))",
                        db="postgres", check=False, timeout=5)
        return res.stdout.strip() if res.returncode == 0 else "down"

    def events(self, since):
        """The monitor's events from time.time() since on: [(time, node,
        reported state, assigned state, description)]."""
        res = self.monitor_psql("SELECT extract(epoch FROM eventtime), nodename, reportedstate, goalstate, "
                                "description FROM pgautofailover.event WHERE eventtime >= "
                                "to_timestamp(%f) ORDER BY eventid" % since, check=False)
        if res.returncode != 0:
            return []
        return [(float(t),) + tuple(rest) for t, *rest in
                (line.split("|", 4) for line in res.stdout.splitlines() if line.count("|") >= 4)]

    def primary(self):
        """"127.0.0.1:PORT" of the node that takes writes (writable() asked
        of each node); None while none does. When both do (the old
        primary restarted by its keeper before the monitor demoted it, see
        the module's comment), the one the monitor assigns primary or
        wait_primary, and the moment is noted in both_writable."""
        writable = [n for n in self.nodes if self.writable(n)]
        if len(writable) > 1:
            self.both_writable.append(time.time())
            states = self.states()
            writable = [n for n in writable
                        if states.get(n.name, ("", ""))[1] in ("primary", "wait_primary")]
            if len(writable) != 1:
                return None
        return writable[0].address if writable else None

    def standby(self):
        """"127.0.0.1:PORT" of the node other than the primary (None without a primary)."""
        primary = self.primary()
        if primary is None:
            return None
        return next(n.address for n in self.nodes if n.address != primary)

    @property
    def hosts(self):
        """POSTGRES_URL for baa: both nodes, "127.0.0.1:P1,127.0.0.1:P2"."""
        return ",".join(n.address for n in self.nodes)

    def db_env(self, db=None):
        """The four POSTGRES_* variables of baa, with both nodes as POSTGRES_URL."""
        return db_env(db or self.db, url=self.hosts, pg=self)

    def sync_states(self, node):
        """pg_stat_replication.sync_state of node's standbys (on a primary)."""
        res = self.psql(node, "SELECT sync_state FROM pg_stat_replication ORDER BY 1", db="postgres",
                        check=False)
        return res.stdout.split() if res.returncode == 0 else None

    def setting(self, node, name):
        return self.psql(node, "SHOW %s" % name, db="postgres").strip()

    # -- failures ------------------------------------------------------------
    def kill_primary_postmaster(self, primary=None, pause_keeper=False):
        """SIGKILL to the postmaster (its pid from postmaster.pid) of the
        primary, "127.0.0.1:PORT" (default: the node that takes writes now):
        no shutdown, no checkpoint; its backends notice their postmaster is
        gone and exit. Its keeper starts it again within seconds, racing
        the monitor (see the module's comment); pause_keeper=True first
        stops the keeper (SIGSTOP to its process group), as when the whole
        node is gone, until resume_keeper(). -> (the node's address, pid)."""
        primary = primary or self.primary()
        if primary is None:
            raise HarnessError("no primary to kill: %r" % self.states_or_error())
        node = self.node_at(primary)
        pid = node.postmaster_pid()
        if pid is None:
            raise HarnessError("%s has no postmaster.pid" % primary)
        if pause_keeper:
            self._signal_keeper(node, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        return primary, pid

    def resume_keeper(self, address):
        """SIGCONT to the keeper of the node at address, paused by
        kill_primary_postmaster(pause_keeper=True)."""
        self._signal_keeper(self.node_at(address), signal.SIGCONT)

    @staticmethod
    def _signal_keeper(node, sig):
        try:
            os.killpg(node.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def switchover(self, timeout=60):
        """`pg_autoctl perform switchover` against the monitor: the primary
        is demoted cleanly (its writes drained) and the standby promoted;
        returns the command's CompletedProcess once the monitor reports it
        done (or --wait seconds passed)."""
        res = self.autoctl(["perform", "switchover", "--monitor", self.monitor_uri,
                            "--wait", str(int(timeout))], timeout=timeout + 30)
        if res.returncode != 0:
            raise HarnessError("pg_autoctl perform switchover failed (%d):\n%s" % (
                res.returncode, res.stdout[-4000:]))
        return res

    def wait_for_new_primary(self, old, timeout=60, check=None):
        """Until a node other than old ("127.0.0.1:PORT") takes writes and
        the monitor assigns it primary or wait_primary; -> its address.
        check(), when given, is called at each poll (to raise, e.g. when
        what should cause the failover failed)."""
        def other():
            if check is not None:
                check()
            p = self.primary()
            if p is None or p == old:
                return None
            goal = self.states().get(self.node_at(p).name, ("", ""))[1]
            return p if goal in ("primary", "wait_primary") else None
        return wait_until(other, timeout, interval=0.1,
                          message="no new primary within %ss (old %s): %r\n%s" % (
                              timeout, old, self.states_or_error(), self.logs_tail()))

    # -- logs ------------------------------------------------------------------
    def log(self, name):
        """The `pg_autoctl run` output of node name (or "monitor")."""
        return read_text(os.path.join(self.base, name + ".log"))

    def logs_tail(self, chars=1500):
        return "".join("--- %s ---\n%s\n" % (n, self.log(n)[-chars:])
                       for n in ["monitor"] + [x.name for x in self.nodes])
