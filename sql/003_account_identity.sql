-- Spotify's account_id (May 2026) is immutable; a user's id may change.
-- baa links a login to its users row on account_id, and on spotify_id only
-- for a row that has no account_id yet (rows from before this migration,
-- or profiles from an API that does not send it). NULL: not known yet.
ALTER TABLE users ADD COLUMN account_id text UNIQUE;

-- When Spotify first answered a refresh with invalid_grant. One answer is
-- not proof (Spotify has sent it during incidents): the tokens are kept
-- until a refresh after BAA_INVALID_GRANT_CONFIRM gets it again. Cleared
-- by a successful refresh and by a login. The session stays valid.
ALTER TABLE users ADD COLUMN needs_reauth_at timestamptz;
