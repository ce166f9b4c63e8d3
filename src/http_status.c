/*
 * Lookups in the status table. A linear scan: the table is short, and
 * the hot path's 200 is its first entry.
 */
#include "http_status.h"

static const int codes[] = {
#define HTTP_STATUS_CODE(code, reason) code,
	HTTP_STATUSES(HTTP_STATUS_CODE)
#undef HTTP_STATUS_CODE
};

static const char *const reasons[HTTP_STATUS_COUNT] = {
#define HTTP_STATUS_REASON(code, reason) reason,
	HTTP_STATUSES(HTTP_STATUS_REASON) /* each entry ends in its comma */
#undef HTTP_STATUS_REASON
	"Unknown",
};

static const char *const labels[HTTP_STATUS_COUNT] = {
#define HTTP_STATUS_LABEL(code, reason) #code,
	HTTP_STATUSES(HTTP_STATUS_LABEL) /* each entry ends in its comma */
#undef HTTP_STATUS_LABEL
	"other",
};

enum http_status_index
http_status_index(int code)
{
	for (int i = 0; i < HTTP_STATUS_OTHER; i++)
		if (codes[i] == code)
			return (enum http_status_index)i;
	return HTTP_STATUS_OTHER;
}

const char *
http_status_reason(enum http_status_index index)
{
	return (unsigned)index < HTTP_STATUS_COUNT ? reasons[index]
						   : reasons[HTTP_STATUS_OTHER];
}

const char *
http_status_label(enum http_status_index index)
{
	return (unsigned)index < HTTP_STATUS_COUNT ? labels[index]
						   : labels[HTTP_STATUS_OTHER];
}
