-- wrk script: GET /me/token as a logged-in user (a fresh token: no refresh).
-- The cookie as in me.lua: BAA_SESSION, under BAA_COOKIE_NAME (default
-- __Host-baa_session).
wrk.method = "GET"
wrk.path = "/me/token"
wrk.headers["Cookie"] = (os.getenv("BAA_COOKIE_NAME") or "__Host-baa_session") .. "=" ..
  os.getenv("BAA_SESSION")
