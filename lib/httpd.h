/* httpd.h - the HTTP/1.1 server (libh2o on the caller's libuv loop).
 *
 * One server listens on one loopback address (127.0.0.0/8 or [::1]); a
 * reverse proxy in front terminates public traffic. Requests are routed by
 * path prefix and method to handlers that run on the loop thread:
 *
 *   struct httpd *h;
 *   struct httpd_config cfg = {.listen = "127.0.0.1:8080"};
 *   if (httpd_new(&h, loop, &cfg, &err) < 0) ...
 *   httpd_route(h, "GET", "/healthz", on_healthz, NULL);
 *   ...
 *   httpd_close(h, on_closed, payload);   // graceful; run the loop until on_closed
 *
 * Answers the server gives by itself: 404 when no route's prefix matches,
 * 405 (with Allow) when one matches but not for this method, 400 for a
 * request target that is not an absolute path or a broken Content-Length or
 * chunked encoding, 413 for a body over body_max (as soon as Content-Length
 * is read, without buffering the body), 500 when a handler returns without
 * answering or deferring.
 *
 * libh2o itself answers 400 to a request it cannot parse, and closes the
 * connection of one with more than 100 headers or over about 400 KiB of
 * request line and headers (H2O_MAX_HEADERS, H2O_MAX_REQLEN). Only HTTP/1.x is
 * served (no h2c upgrade, no ALPN "h2"), so a request stays alive until it
 * is answered even if its handler defers.
 *
 * Everything runs on the loop thread. The process must ignore SIGPIPE (a
 * write to a peer that went away would otherwise end it); main() does so.
 */
#ifndef REEVE_HTTPD_H
#define REEVE_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "err.h"

struct httpd;

struct httpd_config {
    /* "127.0.0.1:8080" or "[::1]:8080"; port 0 picks a free port
     * (httpd_port() tells which). Only loopback addresses are accepted. */
    const char *listen;
    /* Largest request body; 0 means RV_HTTP_BODY_MAX. */
    size_t body_max;
    /* Time to receive a request and idle time of a kept-alive connection;
     * 0 means RV_HTTPD_REQ_TIMEOUT_MS. */
    unsigned req_timeout_ms;
    /* Concurrent connections; 0 means RV_HTTPD_CONNS_MAX. */
    unsigned conns_max;
    /* TLS: both PEM paths (certificate chain, private key), or both NULL
     * for plain HTTP. TLS 1.2 and newer. */
    const char *tls_cert_path;
    const char *tls_key_path;
};

/* A request as a handler sees it. Every string is NUL-terminated and lives
 * in the request's memory: valid until httpd_respond() is called. */
struct httpd_req {
    const char *method; /* "GET", "POST", ... as sent */
    const char *path;   /* normalized absolute path without the query ("/hooks/github") */
    const char *query;  /* text after '?', "" when none */
    const char *body;   /* the whole body (may hold NULs), NUL-terminated; "" when none */
    size_t body_len;    /* excludes the terminating NUL */
    const char *remote; /* peer address, "127.0.0.1:54321" or "[::1]:54321" */
    bool tls;           /* received over TLS */
};

/* A handler must, before it returns, either answer with httpd_respond() or
 * call httpd_req_defer() and answer later, from the loop thread (for example
 * in the after_work callback of a uv_queue_work). It must not block. */
typedef void (*httpd_handler_fn)(struct httpd_req *req, void *payload);
typedef void (*httpd_closed_fn)(void *payload);

/* Bind and listen (synchronously: a busy port fails here with RV_EIO) and
 * serve on loop. On failure *out is NULL and err says why. */
int httpd_new(struct httpd **out, uv_loop_t *loop, const struct httpd_config *config,
              struct rv_error *err);
/* The bound port (useful after listening on port 0). */
uint16_t httpd_port(const struct httpd *h);

/* Route requests whose path is path_prefix, or continues it after a '/'
 * ("/hooks" matches "/hooks" and "/hooks/github", not "/hooksx"; a prefix
 * ending in '/' matches everything below it). method NULL matches any
 * method; "GET" also answers HEAD. The longest matching prefix wins; among
 * its routes the first with a matching method. Returns RV_EINVAL for a bad
 * prefix or method, RV_ELIMIT past RV_HTTPD_ROUTES_MAX. payload must stay
 * valid until the server is closed. */
int httpd_route(struct httpd *h, const char *method, const char *path_prefix,
                httpd_handler_fn handler, void *payload);

/* Look a request header up by name, case-insensitively. Returns the first
 * value (NUL-terminated) or NULL. "Host" gives the request's authority;
 * Content-Length and Transfer-Encoding are consumed by the server (use
 * body_len). */
const char *httpd_req_header(const struct httpd_req *req, const char *name);
/* Add a response header (before httpd_respond). RV_EINVAL for a name that
 * is not an HTTP token or a value holding CR, LF or NUL, or after the answer. */
int httpd_req_add_header(struct httpd_req *req, const char *name, const char *value);
/* Say the handler will answer later. */
void httpd_req_defer(struct httpd_req *req);
/* Answer: status 200..599, content_type may be NULL, body is copied. Call it
 * exactly once per request, on the loop thread; afterwards req is gone.
 * RV_EINVAL for a bad status or content type, or a second answer. */
int httpd_respond(struct httpd_req *req, int status, const char *content_type, const void *body,
                  size_t len);
/* httpd_respond with "text/plain; charset=utf-8" and text plus a newline. */
int httpd_respond_text(struct httpd_req *req, int status, const char *text);

/* Graceful close: stop accepting, close idle kept-alive connections, let
 * requests already received finish (deferred ones must still be answered),
 * then free the server and call closed (may be NULL) from the loop. A
 * request still being received is dropped. h is invalid after this call. */
void httpd_close(struct httpd *h, httpd_closed_fn closed, void *payload);

#endif
