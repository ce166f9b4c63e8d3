-- wrk script: GET /me/token as a logged-in user (a fresh token: no refresh).
wrk.method = "GET"
wrk.path = "/me/token"
wrk.headers["Cookie"] = "baa_session=" .. os.getenv("BAA_SESSION")
