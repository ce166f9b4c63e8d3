/*
 * The ceiling baa is measured against: a libfcgi responder that does no
 * work at all, preforked like baa, answering every request with a fixed
 * JSON body of the size baa's GET /me answers with. Benchmark tool only.
 *
 *   bare-responder ADDRESS WORKERS BODY_BYTES
 *   ADDRESS: ":PORT", "HOST:PORT" or a unix-socket path (FCGX_OpenSocket).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

static void
serve(int fd, const char *body)
{
	FCGX_Request req;
	char response[8192];
	/* Built once: libfcgi's own printf knows no %zu, and a real do-nothing
	 * responder would not format per request anyway. */
	int len = snprintf(response, sizeof(response),
			   "Status: 200 OK\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\n\r\n%s",
			   strlen(body), body);

	FCGX_InitRequest(&req, fd, 0);
	while (FCGX_Accept_r(&req) == 0) {
		FCGX_PutStr(response, len, req.out);
		FCGX_Finish_r(&req);
	}
}

int
main(int argc, char **argv)
{
	int fd, workers, size;
	char *body;

	if (argc != 4 || (workers = atoi(argv[2])) < 1 || (size = atoi(argv[3])) < 2 ||
	    size > 4096) {
		fprintf(stderr, "usage: bare-responder ADDRESS WORKERS BODY_BYTES\n");
		return 2;
	}
	if (FCGX_Init() != 0 || (fd = FCGX_OpenSocket(argv[1], 1024)) < 0) {
		fprintf(stderr, "bare-responder: cannot listen on %s\n", argv[1]);
		return 1;
	}
	body = malloc((size_t)size + 1);
	if (body == NULL)
		return 1;
	memset(body, 'x', (size_t)size);
	body[0] = '"';
	body[size - 1] = '"';
	body[size] = '\0';
	for (int i = 0; i < workers; i++) {
		if (fork() == 0) {
			serve(fd, body);
			_exit(0);
		}
	}
	/* The parent waits; SIGTERM to the process group stops everyone. */
	while (wait(NULL) > 0)
		;
	return 0;
}
