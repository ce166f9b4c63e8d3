-- One row per logged-in device. The cookie carries a random session id
-- (32 bytes); only its SHA-256 is stored, so a copy of the database holds
-- nothing that can be replayed as a cookie. A cookie is honoured only
-- while its row exists and has not expired: deleting the row (logout,
-- revocation, the user's deletion, resetdb) ends the session everywhere,
-- and no cookie can outlive its row to become someone else's session.
CREATE TABLE sessions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash     bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute per session, not per request.
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    -- The idle deadline, least(last_seen_at + BAA_SESSION_TTL, max_expires_at).
    expires_at     timestamptz NOT NULL,
    -- created_at + BAA_SESSION_MAX_AGE: no renewal goes past it.
    max_expires_at timestamptz NOT NULL,
    -- A label from a fixed vocabulary ("Firefox on Linux"), never the raw
    -- User-Agent, and the client's /24 or /64, never its address.
    device         text NOT NULL DEFAULT '',
    network        cidr
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Workers keep the sessions they checked in memory; an ended session
-- tells every listening worker of every instance to forget the user's
-- sessions, at the commit. One notification per user and transaction
-- (PostgreSQL folds identical ones), however many rows a logout ends.
CREATE FUNCTION baa_session_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('baa_session_ended', OLD.user_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_ended
    AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION baa_session_ended();

-- Cookies of the first format (user id and generation, called baa_session)
-- were issued until this migration ran. They are still honoured, and turned
-- into a session row, for users who existed then and until the longest of
-- them has expired; a database made after it (resetdb) honours none.
CREATE TABLE session_cookie_cutover (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO session_cookie_cutover DEFAULT VALUES;

-- Who logged in when, from where, and what happened to their grant.
-- Written in the transaction of what it records. Rows older than
-- BAA_AUDIT_RETENTION_DAYS are deleted a batch at a time, off the request
-- path; a user's deletion takes their rows with it and leaves one line
-- without a user saying that a deletion happened.
CREATE TABLE auth_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint REFERENCES users (id) ON DELETE CASCADE,
    -- sessions.id; no foreign key: the event outlives the session.
    session_id bigint,
    event      text NOT NULL CHECK (event IN ('login', 'logout', 'logout_everywhere',
        'session_revoked', 'refresh', 'refresh_failed', 'reauth_required',
        'rate_limited', 'deleted', 'key_rotated')),
    network    cidr,
    device     text NOT NULL DEFAULT '',
    instance   text NOT NULL DEFAULT ''
);
CREATE INDEX auth_events_user_id ON auth_events (user_id, at DESC);
CREATE INDEX auth_events_at ON auth_events (at);
