/*
 * Sets of Spotify scopes, as Spotify writes them ("a b c": space-separated
 * names). Pure and bounded, so that the allowlist, the stored grant and a
 * request's scope=/require= are compared by the same code: parse, union,
 * what is missing, and back to text.
 */
#ifndef BAA_SCOPES_H
#define BAA_SCOPES_H

#include <stddef.h>

#define SCOPES_MAX 64	     /* names in one set: Spotify documents about 25 */
#define SCOPES_NAME_MAX 64   /* bytes of one name */
#define SCOPES_TEXT_MAX 1024 /* bytes of a set as text (SPOTIFY_SCOPE_MAX) */

struct scopes {
	int count;
	char names[SCOPES_MAX][SCOPES_NAME_MAX + 1];
};

enum scopes_syntax {
	/*
	 * What a client may ask for (/login?scope=, require=): Spotify's
	 * names are lowercase letters, digits and '-'.
	 */
	SCOPES_STRICT,
	/*
	 * What baa's configuration (config_parse_scopes) and Spotify's own
	 * answers may hold: '_' and '.' too, as the configuration always took.
	 */
	SCOPES_LOOSE,
};

/*
 * text[0..len) into out: names separated by one or more spaces, duplicates
 * dropped, in their order. -1 (out empty) for a name outside the syntax,
 * a name over SCOPES_NAME_MAX, more than SCOPES_MAX names or text over
 * SCOPES_TEXT_MAX: refused, never truncated. Empty text is the empty set.
 */
int scopes_parse(struct scopes *out, const char *text, size_t len,
		 enum scopes_syntax syntax);

/* Whether set holds name. */
int scopes_has(const struct scopes *set, const char *name);

/* Adds from's names missing in into, in order; -1 (into unchanged) when the
 * union would exceed SCOPES_MAX. */
int scopes_union(struct scopes *into, const struct scopes *from);

/* text (NULL: none) into out, loosely (stored or configured text); text
 * that does not parse holds nothing. */
void scopes_parse_or_none(const char *text, struct scopes *out);

/* The names of want that have lacks, in want's order. */
void scopes_missing(const struct scopes *have, const struct scopes *want,
		    struct scopes *out);

/*
 * Whether a login is worth asking for: the wanted text (SPOTIFY_SCOPES;
 * NULL: none) names a scope that the granted text (Spotify's; NULL: never
 * stored) lacks and the asked text (what the last login asked Spotify for;
 * NULL: not known) does not hold. A scope asked for and not granted was
 * dropped by Spotify, which a login would not change. A granted or asked
 * text that does not parse holds nothing; a wanted one that does not
 * parse wants nothing (the configuration parsed it at start).
 */
int scopes_worth_asking(const char *granted, const char *asked, const char *wanted);

/* "a b c" into out (size bytes); -1 when it does not fit. */
int scopes_format(const struct scopes *set, char *out, size_t size);

#endif
