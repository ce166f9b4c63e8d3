-- Spotify rate-limits the app, not a user: after a 429 every worker of
-- every instance leaves Spotify alone until Retry-After has passed. The
-- one row says until when (src/pause.c). A write keeps the later deadline,
-- and the trigger tells every listening worker at its commit, with the
-- time left (so that instances need not share a clock with the server).
CREATE TABLE spotify_pause (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    until      timestamptz NOT NULL,
    -- 'short_term' or 'quota_exceeded' (the 429's body said QUOTA_EXCEEDED)
    reason     text NOT NULL CHECK (reason IN ('short_term', 'quota_exceeded')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Not '-infinity': the time left is computed as until - now().
INSERT INTO spotify_pause (until, reason) VALUES ('epoch', 'short_term');

CREATE FUNCTION baa_spotify_paused() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- "<reason> <milliseconds left>", read by pause_parse_notification
    PERFORM pg_notify('baa_spotify_pause', NEW.reason || ' ' ||
        greatest(0, ceil(extract(epoch FROM NEW.until - now()) * 1000))::bigint);
    RETURN NULL;
END
$$;

CREATE TRIGGER spotify_pause_changed
    AFTER INSERT OR UPDATE ON spotify_pause
    FOR EACH ROW EXECUTE FUNCTION baa_spotify_paused();

-- Login states already taken to Spotify (src/states.c): one /callback per
-- state, across every instance, so that a replayed callback cannot spend
-- the app's rate limit. A state is kept (as its SHA-256) until its login
-- cookie has expired; each redemption deletes a few expired rows, found
-- through the index, so the table holds about one login cookie's lifetime
-- of logins.
CREATE TABLE redeemed_states (
    state_hash bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    expires_at timestamptz NOT NULL
);
CREATE INDEX redeemed_states_expires_at ON redeemed_states (expires_at);
