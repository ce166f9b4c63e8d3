/*
 * The HTTP statuses baa answers with, in one table: the reason phrase of
 * the status line (response.c) and a counter of their own in /metrics
 * (metrics.c) come from here, so a status added to one is in both.
 */
#ifndef BAA_HTTP_STATUS_H
#define BAA_HTTP_STATUS_H

/* X(code, reason phrase) */
#define HTTP_STATUSES(X)                                                                 \
	X(200, "OK")                                                                     \
	X(201, "Created")                                                                \
	X(204, "No Content")                                                             \
	X(302, "Found")                                                                  \
	X(303, "See Other")                                                              \
	X(304, "Not Modified")                                                           \
	X(400, "Bad Request")                                                            \
	X(401, "Unauthorized")                                                           \
	X(403, "Forbidden")                                                              \
	X(404, "Not Found")                                                              \
	X(405, "Method Not Allowed")                                                     \
	X(409, "Conflict")                                                               \
	X(413, "Content Too Large")                                                      \
	X(414, "URI Too Long")                                                           \
	X(429, "Too Many Requests")                                                      \
	X(500, "Internal Server Error")                                                  \
	X(502, "Bad Gateway")                                                            \
	X(503, "Service Unavailable")                                                    \
	X(504, "Gateway Timeout")

enum http_status_index {
#define HTTP_STATUS_INDEX(code, reason) HTTP_STATUS_##code,
	HTTP_STATUSES(HTTP_STATUS_INDEX) /* each entry ends in its comma */
#undef HTTP_STATUS_INDEX
	HTTP_STATUS_OTHER, /* anything else: counted as "other" */
	HTTP_STATUS_COUNT,
};

/* The table's index of code; HTTP_STATUS_OTHER when it is not listed. */
enum http_status_index http_status_index(int code);

/* The reason phrase; "Unknown" for HTTP_STATUS_OTHER. */
const char *http_status_reason(enum http_status_index index);

/* The code as text ("404"); "other" for HTTP_STATUS_OTHER. */
const char *http_status_label(enum http_status_index index);

#endif
