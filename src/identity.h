/*
 * Which users row a Spotify login belongs to. Spotify's account_id is
 * immutable and is what accounts are linked on; its id may change, and an
 * id given up by one account may later be another's. Pure: users.c finds
 * the candidate rows (locked) and carries out the plan.
 */
#ifndef BAA_IDENTITY_H
#define BAA_IDENTITY_H

/* A row's account_id against the profile's. */
enum identity_account {
	IDENTITY_ACCOUNT_NONE,	/* the row has none yet */
	IDENTITY_ACCOUNT_SAME,	/* the profile's */
	IDENTITY_ACCOUNT_OTHER, /* another account's */
};

/* The rows holding the profile's account_id or its id; 0: no such row. */
struct identity_rows {
	int profile_has_account; /* the answer carried account_id */
	long long by_account;	 /* the row whose account_id is the profile's */
	long long by_spotify_id; /* the row whose spotify_id is the profile's id */
	enum identity_account spotify_row_account; /* by_spotify_id's account_id */
};

enum identity_match {
	IDENTITY_NEW,	     /* nobody: insert a row */
	IDENTITY_ACCOUNT,    /* found by account_id (spotify_id updated if it changed) */
	IDENTITY_LINKED,     /* found by spotify_id, account_id filled in now */
	IDENTITY_SPOTIFY_ID, /* found by spotify_id, the profile has no account_id */
};

struct identity_plan {
	enum identity_match match;
	long long user;	  /* the row to update; 0 with IDENTITY_NEW */
	long long detach; /* a row that must give up the profile's id first; 0: none */
};

struct identity_plan identity_plan(const struct identity_rows *rows);

/* For the log. */
const char *identity_match_name(enum identity_match match);

#endif
