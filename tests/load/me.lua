-- wrk script: GET /me as a logged-in user. The session cookie's value
-- comes from the environment, BAA_SESSION (tests/load/bench.py mints a
-- session row and signs its cookie), under the name BAA_COOKIE_NAME
-- (default __Host-baa_session; bench.py gives an earlier build, which
-- reads only the first format, baa_session).
-- BAA_PATH (default /me) is the path asked for, BAA_STATUS (default 200)
-- the answer expected: bench.py measures GET /auth (204) with it too.
-- Counts other answers in every thread and adds them up at the end.
wrk.method = "GET"
wrk.path = os.getenv("BAA_PATH") or "/me"
local expected = tonumber(os.getenv("BAA_STATUS") or "200")
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
  if status ~= expected then failed = failed + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("failed") end
  io.write(string.format("lua: not %d: %d\n", expected, total))
end
