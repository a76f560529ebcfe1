/* cli_http.h - the blocking HTTP call of the commands that talk to a
 * running `reeve serve` (status, backups, seal): one request, a bounded
 * answer, and the same plain messages for every failure.
 */
#ifndef REEVE_CLI_HTTP_H
#define REEVE_CLI_HTTP_H

#include <jansson.h>

struct cli_http_req {
    const char *method;   /* "GET" or "POST" (with an empty body) */
    const char *url;
    long timeout_ms;      /* the whole request; the connect is capped separately */
    const char *agent;    /* User-Agent product, e.g. "reeve-status" */
    const char *api;      /* for the 404 hint: "status API", "backups API" */
    const char *accept;   /* Accept header; NULL: application/json */
};

/* Outcome of a call. */
enum cli_http_result {
    CLI_HTTP_OK,          /* 200, *out set */
    CLI_HTTP_UNREACHABLE, /* no answer (printed) */
    CLI_HTTP_REFUSED,     /* another status (printed, with the server's message) */
    CLI_HTTP_MALFORMED,   /* 200 but not what was asked for (printed) */
};

/* A JSON object answer. */
enum cli_http_result cli_http_json(json_t **out, const struct cli_http_req *r);
/* A text answer (NUL-terminated, free() it). */
enum cli_http_result cli_http_text(char **out, const struct cli_http_req *r);

#endif
