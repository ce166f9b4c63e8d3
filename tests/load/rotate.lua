-- wrk script: GET BAA_PATH (default /me) as many users in turn. The session
-- cookies (values of __Host-baa_session), one a line, come from the file
-- BAA_SESSIONS_FILE. Thread k of BAA_THREADS starts at k/BAA_THREADS of
-- the list and every request takes the next cookie, so that the threads
-- walk different parts of it and a worker seldom sees a session again
-- before its cache has let it go.
-- Counts the answers other than BAA_STATUS (default 200), as me.lua.
wrk.method = "GET"
wrk.path = os.getenv("BAA_PATH") or "/me"
local expected = tonumber(os.getenv("BAA_STATUS") or "200")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  failed = 0
  cookies = {}
  for line in io.lines(os.getenv("BAA_SESSIONS_FILE")) do
    if line ~= "" then cookies[#cookies + 1] = "__Host-baa_session=" .. line end
  end
  local n = tonumber(os.getenv("BAA_THREADS") or "1")
  next_cookie = math.floor((id - 1) * #cookies / n)
end

function request()
  next_cookie = next_cookie % #cookies + 1
  return wrk.format(nil, nil, {["Cookie"] = cookies[next_cookie]})
end

function response(status, headers, body)
  if status ~= expected then failed = failed + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("failed") end
  io.write(string.format("lua: not %d: %d\n", expected, total))
end
