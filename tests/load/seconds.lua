-- wrk script used by tests/integration/test_failover.py: GET /me (or
-- BAA_PATH) with the session cookie BAA_SESSION, and each thread's answers
-- counted per second of the wall clock, so that the test sees when
-- requests failed, not only how many. Every second a thread answered in
-- is one line of the file BAA_SECONDS_OUT .. "." .. the thread's number:
--   <unix second> <answers 200> <other answers> <statuses other than 200, as [503][502]>
-- written when the thread's first answer of a later second arrives (the
-- run's last second of each thread is not written: the test's load goes on
-- well past what it measures). Errors of the socket (connect, read, write,
-- timeout) never reach Lua: wrk's own summary counts them, and the
-- BAA-WRK line (as count.lua's) carries them.
wrk.method = "GET"
wrk.path = os.getenv("BAA_PATH") or "/me"
wrk.headers["Cookie"] = "__Host-baa_session=" .. os.getenv("BAA_SESSION")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  out = assert(io.open(os.getenv("BAA_SECONDS_OUT") .. "." .. id, "w"))
  second, ok, bad, seen = nil, 0, 0, ""
  non200 = 0
end

local function flush()
  if second then
    out:write(string.format("%d %d %d %s\n", second, ok, bad, seen))
    out:flush()
  end
end

function response(status, headers, body)
  local now = os.time()
  if now ~= second then
    flush()
    second, ok, bad, seen = now, 0, 0, ""
  end
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
    non200 = non200 + 1
    if not string.find(seen, "[" .. status .. "]", 1, true) then
      seen = seen .. "[" .. status .. "]"
    end
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("non200") end
  io.write(string.format(
    "BAA-WRK requests=%d non200=%d connect=%d read=%d write=%d timeout=%d status=%d max_us=%d\n",
    summary.requests, n, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status, latency.max))
end
