-- wrk script: GET /me as a logged-in user. The cookie comes from the
-- environment (tests/load/bench.py signs one for a user it created).
-- Counts answers other than 200 in every thread and adds them up at the end.
wrk.method = "GET"
wrk.path = "/me"
wrk.headers["Cookie"] = "baa_session=" .. os.getenv("BAA_SESSION")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failed = 0
end

function response(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("failed") end
  io.write(string.format("lua: non-200 %d\n", total))
end
