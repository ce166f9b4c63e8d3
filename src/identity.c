/*
 * The linking rule. A row found by account_id is the user, whatever id it
 * was stored under. A row found only by spotify_id is the user when it has
 * no account_id yet (it is linked now) or when the profile carries none
 * (an older API: as before account_id existed). A row holding the
 * profile's id under another account_id, or holding it while the account
 * is found elsewhere, is someone whose id has since changed: it gives the
 * id up ("detached"), keeping its row, tokens and sessions, and is found
 * again by its own account_id at its next login. Nothing is ever merged:
 * two rows are never made one, and no row is handed to another account.
 */
#include "identity.h"

struct identity_plan
identity_plan(const struct identity_rows *rows)
{
	struct identity_plan plan = {IDENTITY_NEW, 0, 0};

	if (!rows->profile_has_account) {
		if (rows->by_spotify_id)
			plan = (struct identity_plan){IDENTITY_SPOTIFY_ID,
						      rows->by_spotify_id, 0};
		return plan;
	}
	if (rows->by_account) {
		plan.match = IDENTITY_ACCOUNT;
		plan.user = rows->by_account;
		if (rows->by_spotify_id && rows->by_spotify_id != rows->by_account)
			plan.detach = rows->by_spotify_id;
		return plan;
	}
	if (rows->by_spotify_id == 0)
		return plan;
	switch (rows->spotify_row_account) {
	case IDENTITY_ACCOUNT_NONE:
		plan.match = IDENTITY_LINKED;
		plan.user = rows->by_spotify_id;
		break;
	case IDENTITY_ACCOUNT_SAME: /* by_account is this row: the caller says so */
		plan.match = IDENTITY_ACCOUNT;
		plan.user = rows->by_spotify_id;
		break;
	case IDENTITY_ACCOUNT_OTHER: plan.detach = rows->by_spotify_id; break;
	}
	return plan;
}

const char *
identity_match_name(enum identity_match match)
{
	switch (match) {
	case IDENTITY_ACCOUNT: return "account_id";
	case IDENTITY_LINKED: return "linked";
	case IDENTITY_SPOTIFY_ID: return "spotify_id";
	default: return "new";
	}
}
