-- What the user's last login asked Spotify for (space-separated scopes),
-- beside what Spotify granted (scope). Spotify may drop a scope at every
-- consent: a configured scope that the last login asked for and did not
-- get is not worth asking again, so reauth_recommended leaves it out.
-- NULL: the last login is from before baa kept it (or its login cookie
-- could not carry it); the grant alone decides then, as before.
ALTER TABLE users ADD COLUMN scope_requested text;
