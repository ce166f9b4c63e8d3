-- Users who logged in with Spotify, and the tokens baa holds for them.
CREATE TABLE users (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spotify_id         text NOT NULL UNIQUE,
    -- Spotify access tokens run past 200 characters: text, not varchar(n).
    spotify_token      text,
    refresh_token      text,
    token_expires_at   timestamptz,
    display_name       text,
    -- The scopes the user granted, space-separated as Spotify returns them.
    scope              text,
    -- Bumped on logout: a session cookie carries the generation it was
    -- issued under and is refused once it no longer matches.
    session_generation integer NOT NULL DEFAULT 1,
    -- Refresh tokens die six months after the user's authorization.
    authorized_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
