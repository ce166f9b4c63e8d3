-- wrk script: GET /me as a logged-in user. The session cookie's value
-- comes from the environment, BAA_SESSION (tests/load/bench.py mints a
-- session row and signs its cookie), under the name BAA_COOKIE_NAME
-- (default __Host-baa_session; bench.py gives an earlier build, which
-- reads only the first format, baa_session).
-- Counts answers other than 200 in every thread and adds them up at the end.
wrk.method = "GET"
wrk.path = "/me"
wrk.headers["Cookie"] = (os.getenv("BAA_COOKIE_NAME") or "__Host-baa_session") .. "=" ..
  os.getenv("BAA_SESSION")

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
