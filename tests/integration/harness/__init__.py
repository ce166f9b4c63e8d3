"""Reusable pieces for the baa integration tests (Python 3 standard library
only), one module per thing they start or speak to:

  base        the tree, who we run as, waiting, free ports
  processes   the registry that kills everything started, /proc helpers
  postgres    a throw-away cluster (cluster(): the run's shared one), its
              hot standby, psql
  pgbouncer   PgBouncer in front of it
  autofailover  pg_auto_failover: a monitor and two nodes, failover, switchover
  fake        the fake Spotify over HTTPS, its client id and redirect URI
  env         the environment baa runs with
  baa         `baa <subcommand>` and `baa serve`, logfmt
  nginx       a minimal nginx in front of one baa
  site        the shipped site (render-nginx local) over several instances
  demo        the demo application the site protects with /auth
  prometheus  a real Prometheus with a given configuration, its HTTP API
  web         one HTTP(S) request, /metrics
  load        request loops, concurrent calls, wrk's count line
  cookies     baa's signed cookies; sessions minted in the database
  tokens      the tokens baa stores encrypted, opened
  browser     a cookie jar that logs in through the fake; devices
  cases       BaaTestCase, SpotifyTestCase, TwoInstancesTestCase
  tags        @slow and @root_only, which run.py reports as skips

Tests import names from the package (`from harness import Baa, ...`).
Everything started is registered and killed at interpreter exit or by
cleanup_all(), so a failing or interrupted run leaves nothing behind.

Environment knobs:
  BAA_BIN            path of the baa binary (default <repo>/build/src/baa)
  SANITIZER_LOG_DIR  when set, baa gets ASAN_OPTIONS/UBSAN_OPTIONS writing there
  BAA_IT_PG_BIN      PostgreSQL server bin dir (default /usr/lib/postgresql/15/bin)
  BAA_IT_NGINX       nginx binary (default /usr/sbin/nginx)
  BAA_IT_PGBOUNCER   pgbouncer binary (default /usr/sbin/pgbouncer)
  BAA_IT_PG_AUTOCTL  pg_autoctl binary (default /usr/bin/pg_autoctl)
  BAA_IT_PROMETHEUS  prometheus binary (default /usr/bin/prometheus)
  BAA_IT_KEEP_TMP    when set, temp dirs are kept after the run
  BAA_QUICK          when 1, @slow tests are skipped (scripts/test --quick)
"""

from .base import *  # noqa: F401,F403
from .processes import *  # noqa: F401,F403
from .postgres import *  # noqa: F401,F403
from .fake import *  # noqa: F401,F403
from .env import *  # noqa: F401,F403
from .pgbouncer import *  # noqa: F401,F403
from .autofailover import *  # noqa: F401,F403
from .baa import *  # noqa: F401,F403
from .web import *  # noqa: F401,F403
from .nginx import *  # noqa: F401,F403
from .cookies import *  # noqa: F401,F403
from .tokens import *  # noqa: F401,F403
from .browser import *  # noqa: F401,F403
from .site import *  # noqa: F401,F403
from .demo import *  # noqa: F401,F403
from .prometheus import *  # noqa: F401,F403
from .load import *  # noqa: F401,F403
from .cases import *  # noqa: F401,F403
from .tags import *  # noqa: F401,F403
from .nspawn import *  # noqa: F401,F403
from .debian import *  # noqa: F401,F403
