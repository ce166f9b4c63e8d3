"""tests/load/bench.py's markdown: the table of every row, then the ratios
and what each row's figures mean, for the rows the run measured."""

import os

GROUPS = (("baa", "baa"), ("nginx", "nginx"), ("postgres", "PostgreSQL"), ("fake", "stand-in"),
          ("driver", "driver"))
# Rows the stand-in takes part in (its CPU is shown only there).
WITH_FAKE = ("logins", "baa-refresh")


def fmt(r, key, form="%.1f"):
    return form % r[key] if r.get(key) is not None else "–"


def table(rows):
    lines = ["| target | conns | per | rate /s | p50 ms | p99 ms | baa CPU µs | nginx CPU µs "
             "| PostgreSQL CPU µs | stand-in CPU µs | driver CPU µs | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        baa = r["name"].startswith(("baa-", "auth-")) or r["name"] in ("logins", "kore-me")
        errors = (r["errors"] or "0") + ("; non-2xx %d" % r["non2xx"] if r["non2xx"] else "")
        if r.get("failed"):
            errors += "; failed logins %d" % r["failed"]
        lines.append("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["connections"], r["unit"], r["rps"], fmt(r, "p50", "%.2f"),
            fmt(r, "p99", "%.2f"), fmt(r, "cpu_baa") if baa else "–", fmt(r, "cpu_nginx"),
            fmt(r, "cpu_postgres"), fmt(r, "cpu_fake") if r["name"] in WITH_FAKE else "–",
            fmt(r, "cpu_driver"), errors))
    return lines


def busy(r):
    """Each group's CPU as a share of one core while the row ran, the CPU
    all of them spent per unit, what that allows on this machine's cores,
    and how busy the machine was (other processes included)."""
    shares = ", ".join("%s %.0f%%" % (label, 100 * r["cpu_s"][key] / r["seconds"])
                       for key, label in GROUPS if key in r["cpu_s"])
    per_unit = sum(r["cpu_s"].values()) / max(r["units"], 1)
    return ("%s; %.2f ms of CPU per %s in all (CPU alone allows %.0f/s on %d cores); the "
            "machine %.0f%% busy, %.0f%% stolen by its host"
            % (shares, per_unit * 1e3, r["unit"], os.cpu_count() / per_unit if per_unit else 0,
               os.cpu_count(), 100 * r["machine_busy"][0], 100 * r["machine_busy"][1]))


def ratio(a, b, key="rps"):
    return a[key] / b[key] if b.get(key) else float("nan")


def pg_share(row, bench_row):
    return ("PostgreSQL CPU %.1f µs/req against pgbench's %.1f µs/tx (x%.2f)"
            % (row["cpu_postgres"], bench_row["cpu_postgres"],
               ratio(row, bench_row, "cpu_postgres")))


def cached_lines(c, by, before):
    out = []
    if all(k in by for k in ("baa-me", "bare-fcgi", "baa-me-1cpr", "nginx-200", "pgbench")):
        out.append("- %d connections: baa-me / bare-fcgi = **%.2f** (one connection per request: "
                   "%.2f), baa-me / nginx-200 = %.2f, baa-me / pgbench = %.2f"
                   % (c, ratio(by["baa-me"], by["bare-fcgi"]), ratio(by["baa-me-1cpr"], by["bare-fcgi"]),
                      ratio(by["baa-me"], by["nginx-200"]), ratio(by["baa-me"], by["pgbench"])))
    if all(k in by for k in ("baa-me", "baa-auth", "auth-request")):
        out.append("- %d connections: baa-auth / baa-me = **%.2f** (baa CPU %.1f against %.1f"
                   " µs/req, p99 %.2f against %.2f ms); auth-request / baa-me = %.2f"
                   % (c, ratio(by["baa-auth"], by["baa-me"]), by["baa-auth"]["cpu_baa"],
                      by["baa-me"]["cpu_baa"], by["baa-auth"]["p99"], by["baa-me"]["p99"],
                      ratio(by["auth-request"], by["baa-me"])))
    if "baa-me-before" in by and "baa-me" in by:
        out.append("- %d connections: baa-me / baa-me-before (%s) = **%.3f**, p99 %.2f "
                   "against %.2f ms" % (c, before, ratio(by["baa-me"], by["baa-me-before"]),
                                        by["baa-me"]["p99"], by["baa-me-before"]["p99"]))
    return out


def beside_pgbench(m, by):
    """"; / pgbench-10k = ..." for a row over many sessions: its rate and
    PostgreSQL's CPU beside pgbench's on the same sessions (or on one)."""
    for ref in ("pgbench-10k", "pgbench"):
        if ref in by:
            return "; / %s = %.2f, %s" % (ref, ratio(m, by[ref]), pg_share(m, by[ref]))
    return ""


def database_lines(c, by):
    out = []
    if "baa-me-nocache" in by:
        nc = by["baa-me-nocache"]
        text = "- %d connections: baa-me-nocache" % c
        if "baa-me" in by:
            text += " / baa-me = **%.2f** (p99 %.2f against %.2f ms, baa CPU %.1f against %.1f " \
                    "µs/req)" % (ratio(nc, by["baa-me"]), nc["p99"], by["baa-me"]["p99"],
                                 nc["cpu_baa"], by["baa-me"]["cpu_baa"])
        if "pgbench" in by:
            text += "; / pgbench = %.2f, %s" % (ratio(nc, by["pgbench"]), pg_share(nc, by["pgbench"]))
        out.append(text)
    if "kore-me" in by:
        k = by["kore-me"]
        for name in ("baa-me", "baa-me-nocache"):
            if name in by:
                out.append("- %d connections: %s / kore-me = **%.2f**, p99 %.2f against Kore's "
                           "%.2f ms (Kore's CPU %.1f µs/req in the baa column, no nginx in front)"
                           % (c, name, ratio(by[name], k), by[name]["p99"], k["p99"], k["cpu_baa"]))
    if "baa-me-10k" in by:
        m = by["baa-me-10k"]
        text = "- %d connections: baa-me-10k over %d sessions of as many users (each seen " \
               "less than a minute before: no touch): session cache hits " % (c, m["distinct"])
        by_bytes = ("by the bytes sent to PostgreSQL (%d checks of %.0f bytes for %d requests; "
                    "wrk does not count the up to %d in flight at its stop)"
                    % (m["misses"], m["per_check"], m["requests"], c))
        if "counted_hits" in m:
            text += ("**%.1f%%** by baa_session_lookups_total; %.1f%% %s, which checks "
                     "looked up together make high" % (100 * m["counted_hits"],
                                                       100 * m["hit_ratio"], by_bytes))
        else:
            text += "**%.1f%%** %s" % (100 * m["hit_ratio"], by_bytes)
        if "baa-me" in by:
            text += "; / baa-me = **%.2f** (issue 13 aims at 0.75 or more)" % ratio(m, by["baa-me"])
        text += beside_pgbench(m, by)
        out.append(text)
    if "baa-10k-nocache" in by:
        m = by["baa-10k-nocache"]
        text = "- %d connections: baa-10k-nocache (cache off, each request its own user)" % c
        if "baa-10k-nocache-before" in by:
            b = by["baa-10k-nocache-before"]
            text += " / the build before = **%.2f** (issue 13 aims at 1.5 or more), p99 %.2f " \
                    "against %.2f ms, baa CPU %.1f against %.1f µs/req" % (
                        ratio(m, b), m["p99"], b["p99"], m["cpu_baa"], b["cpu_baa"])
        if "baa-me-nocache" in by:
            text += "; / baa-me-nocache (one session) = %.2f" % ratio(m, by["baa-me-nocache"])
        if "kore-me" in by:
            text += "; / kore-me = %.2f" % ratio(m, by["kore-me"])
        text += beside_pgbench(m, by)
        out.append(text)
    if "baa-token" in by:
        t = by["baa-token"]
        text = "- %d connections: baa-token (no refresh, not kept as shipped)" % c
        if "pgbench-token" in by:
            text += " / pgbench-token = %.2f, %s" % (ratio(t, by["pgbench-token"]),
                                                      pg_share(t, by["pgbench-token"]))
        out.append(text)
    return out


def spotify_lines(c, by):
    out = []
    if "logins" in by:
        r = by["logins"]
        out.append("- %d connections: logins **%.0f/s** (%d in %.1f s, %d failed); p50/p99 are "
                   "of single steps (3 requests a login); CPU as a share of one core: %s"
                   % (c, r["rps"], r["units"], r["seconds"], r.get("failed", 0), busy(r)))
    if "baa-refresh" in by:
        r = by["baa-refresh"]
        n = r["refreshes"]
        out.append("- %d connections: baa-refresh **%.0f refreshes/s** (baa's /metrics %d, the "
                   "stand-in's /_fake/stats %d, rows whose token_expires_at moved %d, of %d "
                   "expired), %.0f req/s; CPU as a share of one core: %s"
                   % (c, r["rps"], n["baa"], n["stand-in"], n["database"], r["expired"],
                      r["req_rps"], busy(r)))
        if n["baa"] >= 0.9 * r["expired"]:
            out.append("  - **ran out of expired users** (%d of %d refreshed): the rate is low by "
                       "the requests that found a fresh token; raise --users" % (n["baa"], r["expired"]))
    return out


def report(bench):
    args = bench.args
    lines = table(bench.rows) + [""]
    for c in args.connections:
        by = {r["name"]: r for r in bench.rows if r["connections"] == c}
        lines += cached_lines(c, by, args.before) + database_lines(c, by) + spotify_lines(c, by)
    if bench.rss:
        lines.append("- baa worker RSS: %s KiB (%d workers)"
                     % (", ".join(map(str, bench.rss)), len(bench.rss)))
    lines.append("- CPU columns: µs per unit of `per` (req, login, refresh, or a pgbench "
                 "transaction); driver: wrk or pgbench itself")
    seen = [r["machine_busy"] for r in bench.rows if "machine_busy" in r]
    if seen:
        lines.append("- the whole machine during the wrk rows: %.0f to %.0f%% busy, %.0f to %.0f%% "
                     "stolen by its host (a quiet machine: busy only with the rows' processes, "
                     "nothing stolen)" % (100 * min(b for b, _ in seen), 100 * max(b for b, _ in seen),
                                         100 * min(t for _, t in seen), 100 * max(t for _, t in seen)))
    lines.append("- %d s per measurement, wrk -t2 (logins: one thread per connection), %d baa "
                 "workers, nginx worker_processes 1 with keepalive %d to baa (the Spotify routes "
                 "not kept, as shipped), %d CPUs, %d minted users with a session each and %d "
                 "logged in, BAA_PROFILE_CACHE=%s, BAA_SANDBOX=%s, PostgreSQL %s"
                 % (args.seconds, args.workers, args.keepalive, os.cpu_count(),
                    max(args.sessions, 1), len(bench.users.sessions), args.profile_cache,
                    args.sandbox, "durable (fsync, synchronous_commit, full_page_writes on)"
                    if args.durable else "without fsync, synchronous_commit, full_page_writes "
                    "(the test cluster's settings; --durable turns them on)"))
    return "\n".join(lines) + "\n"
