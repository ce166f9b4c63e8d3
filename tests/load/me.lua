-- wrk script: GET /me as a logged-in user. The cookie comes from the
-- environment (tests/load/bench signs one for a user it created).
wrk.method = "GET"
wrk.path = "/me"
wrk.headers["Cookie"] = "baa_session=" .. os.getenv("BAA_SESSION")

local failed = 0
response = function(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("lua: non-200 %d\n", failed))
end
