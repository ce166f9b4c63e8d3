/*
 * The scan that decides when a request has arrived whole and may go to
 * libfcgi (fcgi_conn_scan), over any bytes a peer may send. Invariants:
 * more bytes never turn a whole request back into a partial one (so a
 * request once judged whole is served, whatever follows it); whole means
 * that a record boundary holds an empty STDIN record or a header libfcgi
 * refuses; and only FCGI_CONN_REQUEST_MAX bytes without that are too large.
 */
#include "fuzz.h"

#include <fastcgi.h>

#include "../../src/fcgi_conn.h"

/* The scan's rule, walked the slow way: the offset where the request ends. */
static int
ends_within(const uint8_t *data, size_t size)
{
	for (size_t at = 0; at + FCGI_HEADER_LEN <= size;) {
		const uint8_t *h = data + at;

		if (h[0] != FCGI_VERSION_1 ||
		    (h[1] == FCGI_STDIN && h[4] == 0 && h[5] == 0))
			return 1;
		at += FCGI_HEADER_LEN + ((size_t)h[4] << 8 | h[5]) + h[6];
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum fcgi_conn_arrival all = fcgi_conn_scan(data, size);

	FUZZ_ASSERT(all == FCGI_CONN_WHOLE || all == FCGI_CONN_PARTIAL ||
		    all == FCGI_CONN_TOO_LARGE);
	FUZZ_ASSERT((all == FCGI_CONN_WHOLE) == ends_within(data, size));
	FUZZ_ASSERT(all != FCGI_CONN_TOO_LARGE || size >= FCGI_CONN_REQUEST_MAX);
	FUZZ_ASSERT(all != FCGI_CONN_PARTIAL || size < FCGI_CONN_REQUEST_MAX);
	for (size_t cut = 0; cut < size; cut++)
		if (fcgi_conn_scan(data, cut) == FCGI_CONN_WHOLE)
			FUZZ_ASSERT(all == FCGI_CONN_WHOLE);
	return 0;
}
