-- Workers keep what GET /me shows in memory; any change to a user's row
-- (login, refresh, logout, deletion) tells every listening worker of every
-- instance to forget that user, in the transaction's commit.
CREATE FUNCTION baa_user_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('baa_user_changed', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION baa_user_changed();
