-- wrk script used by the integration tests: counts answers other than 200
-- (and which statuses) in every thread, and prints one BAA-WRK summary line
-- (duration_us: how long wrk ran, as its "requests in" line says).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0; seen = "" end
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if not string.find(seen, "[" .. status .. "]", 1, true) then
      seen = seen .. "[" .. status .. "]"
    end
  end
end
function done(summary, latency, requests)
  local n, s = 0, ""
  for _, t in ipairs(threads) do n = n + t:get("non200"); s = s .. t:get("seen") end
  io.write(string.format(
    "BAA-WRK requests=%d non200=%d connect=%d read=%d write=%d timeout=%d status=%d max_us=%d duration_us=%d seen=%s\n",
    summary.requests, n, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status, latency.max, summary.duration, s))
end
