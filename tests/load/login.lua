-- wrk script: whole logins, one after another on each connection, through
-- tests/load/bench.py's nginx: GET /login -> GET /authorize (that nginx
-- passes it on to the Spotify stand-in, since wrk reaches one host) -> GET
-- /callback with the oauth cookie. Run it with one connection per thread
-- (wrk -tN -cN): the steps are a thread's state, and wrk does not say which
-- connection a request is for.
-- Every session cookie a login ends with is appended to the file
-- BAA_SESSIONS_OUT .. "." .. the thread's number, one a line. nginx copies
-- /callback's Set-Cookie headers into X-Bench-Session: wrk gives Lua only
-- the last header of a name, which is the oauth cookie's clearing.
-- Prints "lua: logins N failed M" at the end.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  logins = 0
  failed = 0
  step = "login"
  path = "/login"
  cookie = nil
  out = assert(io.open(os.getenv("BAA_SESSIONS_OUT") .. "." .. id, "w"))
  out:setvbuf("line")
end

local function path_of(url)
  return url and string.match(url, "^https?://[^/]+(/.*)$")
end

function request()
  if step == "callback" then
    return wrk.format("GET", path, {["Cookie"] = cookie})
  end
  return wrk.format("GET", path)
end

-- The step after this answer: nil when a login ended (a session, or a failure).
local function next_step(status, headers)
  if step == "login" then
    path = path_of(headers["Location"])
    cookie = string.match(headers["Set-Cookie"] or "", "^([^;]+)")
    if status == 302 and path and cookie then return "authorize" end
  elseif step == "authorize" then
    path = path_of(headers["Location"])
    if status == 302 and path and string.find(path, "code=", 1, true) then return "callback" end
  else
    local session = string.match(headers["X-Bench-Session"] or "", "__Host%-baa_session=([^;]+)")
    if status == 302 and session then
      logins = logins + 1
      out:write(session, "\n")
      return nil
    end
  end
  failed = failed + 1
  return nil
end

function response(status, headers, body)
  step = next_step(status, headers)
  if not step then
    step = "login"
    path = "/login"
  end
end

function done(summary, latency, requests)
  local n, f = 0, 0
  for _, t in ipairs(threads) do n = n + t:get("logins"); f = f + t:get("failed") end
  io.write(string.format("lua: logins %d failed %d\n", n, f))
end
