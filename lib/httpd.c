#include "httpd.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "limits.h"
#include "log.h"

#define HTTPD_LOG "httpd"

struct httpd_route_entry {
    char *method; /* NULL: any method */
    char *prefix;
    size_t prefix_len;
    httpd_handler_fn fn;
    void *payload;
};

/* One accepted connection. h2o owns the socket built on tcp and hands the
 * handle back to conn_closed when it is done, so tcp must stay first. */
struct httpd_conn {
    uv_tcp_t tcp;
    struct httpd *h;
    struct httpd_conn *prev;
    struct httpd_conn *next;
};

struct httpd_h2o_handler {
    h2o_handler_t super;
    struct httpd *h;
};

struct httpd {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl;
    uv_tcp_t listener;
    uv_idle_t fin[2]; /* two close rounds before the memory goes, see finish() */
    struct httpd_conn *conns;
    unsigned nconns;
    unsigned conns_max;
    size_t body_max;
    uint16_t port;
    bool config_inited;
    bool ctx_inited;
    bool closing;
    bool listener_closed;
    bool finishing;
    httpd_closed_fn closed;
    void *closed_payload;
    size_t nroutes;
    struct httpd_route_entry routes[RV_HTTPD_ROUTES_MAX];
};

/* What a handler gets (pub) and what the server keeps about the exchange.
 * Lives in the request's memory pool. */
struct httpd_exchange {
    struct httpd_req pub;
    h2o_req_t *req;
    struct httpd *h;
    h2o_generator_t generator;
    bool in_handler;
    bool deferred;
    bool answered;
    int status;
    h2o_iovec_t body;
};

static struct httpd_exchange *exchange_of(const struct httpd_req *req)
{
    return (struct httpd_exchange *)((char *)req - offsetof(struct httpd_exchange, pub));
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        break;
    }
    if (status < 300)
        return "OK";
    if (status < 400)
        return "Redirect";
    if (status < 500)
        return "Client Error";
    return "Server Error";
}

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!is_token_char((unsigned char)*s))
            return false;
    return true;
}

static bool is_header_value(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* --- listen address --- */

static int parse_listen(struct sockaddr_storage *ss, const char *addr, struct rv_error *err)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char host[64];
    const char *host_start;
    const char *port_s = NULL;
    size_t host_len = sizeof(host);
    unsigned long port;
    bool loopback = false;
    int rc = 0;

    memset(ss, 0, sizeof(*ss));
    if (addr == NULL || *addr == '\0') {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: no listen address; set one such as '127.0.0.1:8080'");
        goto out;
    }
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        host_start = addr + 1;
        if (rb != NULL && rb[1] == ':') {
            host_len = (size_t)(rb - host_start);
            port_s = rb + 2;
        }
    } else {
        const char *colon = strrchr(addr, ':');
        host_start = addr;
        if (colon != NULL) {
            host_len = (size_t)(colon - addr);
            port_s = colon + 1;
        }
    }
    if (port_s == NULL || host_len >= sizeof(host) || *port_s == '\0' || strlen(port_s) > 5 ||
        strspn(port_s, "0123456789") != strlen(port_s))
        goto bad;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    port = strtoul(port_s, NULL, 10);
    if (port > 65535)
        goto bad;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    } else {
        goto bad;
    }
    if (!loopback)
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: listen address '%s' is not a loopback address; reeve serves "
                          "on 127.0.0.0/8 or [::1] only, put a reverse proxy in front for "
                          "remote clients",
                          addr);
    goto out;
bad:
    rc = rv_error_set(err, RV_EINVAL, false,
                      "httpd: listen address '%s' is not 'IP:PORT'; use e.g. '127.0.0.1:8080' "
                      "or '[::1]:8080'",
                      addr);
out:
    return rc;
}

static int bind_socket(int *out_fd, uint16_t *out_port, const struct sockaddr_storage *ss,
                       const char *addr, struct rv_error *err)
{
    int rc = 0;
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t sl =
        ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);

    *out_fd = -1;
    if (fd < 0) {
        rc = rv_error_set(err, RV_EIO, true, "httpd: cannot create a socket for '%s': %s", addr,
                          strerror(errno));
        goto out;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        rc = rv_error_set(err, RV_EIO, false, "httpd: cannot set SO_REUSEADDR on '%s': %s", addr,
                          strerror(errno));
        goto out;
    }
    if (bind(fd, (const struct sockaddr *)ss, sl) != 0) {
        int e = errno;
        rc = rv_error_set(err, RV_EIO, e == EADDRINUSE, "httpd: cannot bind '%s': %s%s", addr,
                          strerror(e),
                          e == EADDRINUSE ? "; stop the other server or pick another port" : "");
        goto out;
    }
    if (listen(fd, RV_HTTPD_BACKLOG) != 0) {
        rc = rv_error_set(err, RV_EIO, false, "httpd: cannot listen on '%s': %s", addr,
                          strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) != 0) {
        rc = rv_error_set(err, RV_EIO, false, "httpd: cannot read the bound port of '%s': %s", addr,
                          strerror(errno));
        goto out;
    }
    *out_port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *out_fd = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* --- answering --- */

static void send_answer(struct httpd_exchange *x)
{
    h2o_req_t *req = x->req;
    bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    bool no_body = head || x->status == 204 || x->status == 304 || x->body.len == 0;

    if (x->h->closing)
        req->http1_is_persistent = 0; /* answer with "Connection: close" */
    req->res.status = x->status;
    req->res.reason = reason_phrase(x->status);
    req->res.content_length = (x->status == 204 || x->status == 304) ? 0 : x->body.len;
    x->generator.proceed = NULL;
    x->generator.stop = NULL;
    h2o_start_response(req, &x->generator);
    /* From here on the request may be disposed at any time: touch nothing. */
    if (no_body)
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &x->body, 1, H2O_SEND_STATE_FINAL);
}

int httpd_respond(struct httpd_req *pub, int status, const char *content_type, const void *body,
                  size_t len)
{
    struct httpd_exchange *x;
    h2o_req_t *req;

    if (pub == NULL || (body == NULL && len > 0))
        return RV_EINVAL;
    x = exchange_of(pub);
    req = x->req;
    if (x->answered) {
        log_error(HTTPD_LOG, "handler for '%s %s' answered twice; answer a request once",
                  pub->method, pub->path);
        return RV_EINVAL;
    }
    if (status < 200 || status > 599 || (content_type != NULL && !is_header_value(content_type)))
        return RV_EINVAL;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       h2o_strdup(&req->pool, content_type, SIZE_MAX).base, strlen(content_type));
    x->status = status;
    x->body = len > 0 ? h2o_strdup(&req->pool, body, len) : h2o_iovec_init(NULL, 0);
    x->answered = true;
    log_debug(HTTPD_LOG, "%s %s %s -> %d (%zu bytes)", pub->remote, pub->method, pub->path, status,
              len);
    /* Inside the handler the answer is sent once the handler returns, so
     * the handler can still read req until then. */
    if (!x->in_handler)
        send_answer(x);
    return 0;
}

int httpd_respond_text(struct httpd_req *req, int status, const char *text)
{
    struct httpd_exchange *x;
    size_t n;
    char *s;

    if (req == NULL || text == NULL)
        return RV_EINVAL;
    x = exchange_of(req);
    n = strlen(text);
    s = h2o_mem_alloc_pool(&x->req->pool, n + 1);
    memcpy(s, text, n);
    s[n] = '\n';
    return httpd_respond(req, status, "text/plain; charset=utf-8", s, n + 1);
}

void httpd_req_defer(struct httpd_req *req)
{
    if (req != NULL)
        exchange_of(req)->deferred = true;
}

int httpd_req_add_header(struct httpd_req *pub, const char *name, const char *value)
{
    struct httpd_exchange *x;
    h2o_req_t *req;
    size_t n;

    if (pub == NULL || !is_token(name) || !is_header_value(value))
        return RV_EINVAL;
    x = exchange_of(pub);
    if (x->answered)
        return RV_EINVAL;
    req = x->req;
    n = strlen(name);
    if (n > RV_HTTPD_HEADER_NAME_MAX)
        return RV_EINVAL;
    h2o_iovec_t lname = h2o_strdup(&req->pool, name, n);
    for (size_t i = 0; i < n; i++)
        lname.base[i] = (char)tolower((unsigned char)lname.base[i]);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname.base, n, 1, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
    return 0;
}

const char *httpd_req_header(const struct httpd_req *pub, const char *name)
{
    char lower[RV_HTTPD_HEADER_NAME_MAX];
    struct httpd_exchange *x;
    h2o_req_t *req;
    size_t n;
    ssize_t i;

    if (pub == NULL || name == NULL)
        return NULL;
    n = strlen(name);
    if (n == 0 || n > sizeof(lower))
        return NULL;
    x = exchange_of(pub);
    req = x->req;
    for (size_t k = 0; k < n; k++)
        lower[k] = (char)tolower((unsigned char)name[k]);
    /* h2o keeps Host apart from the other headers */
    if (n == 4 && memcmp(lower, "host", 4) == 0)
        return req->input.authority.base != NULL
                   ? h2o_strdup(&req->pool, req->input.authority.base, req->input.authority.len)
                         .base
                   : NULL;
    i = h2o_find_header_by_str(&req->headers, lower, n, -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    return h2o_strdup(&req->pool, v.base, v.len).base;
}

/* --- routing --- */

static bool prefix_matches(const struct httpd_route_entry *r, const char *path)
{
    if (strncmp(path, r->prefix, r->prefix_len) != 0)
        return false;
    if (r->prefix[r->prefix_len - 1] == '/')
        return true;
    return path[r->prefix_len] == '\0' || path[r->prefix_len] == '/';
}

static bool method_matches(const struct httpd_route_entry *r, const char *method)
{
    if (r->method == NULL || strcmp(r->method, method) == 0)
        return true;
    return strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void format_peer(char *out, size_t out_size, h2o_conn_t *conn)
{
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN];
    socklen_t n;

    snprintf(out, out_size, "unknown");
    n = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    if (n == 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) != NULL)
            snprintf(out, out_size, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) != NULL)
            snprintf(out, out_size, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct httpd *h = ((struct httpd_h2o_handler *)self)->h;
    struct httpd_exchange *x = h2o_mem_alloc_pool(&req->pool, sizeof(*x));
    const struct httpd_route_entry *best = NULL;
    size_t best_len = 0;
    char *remote = h2o_mem_alloc_pool(&req->pool, INET6_ADDRSTRLEN + 16);

    memset(x, 0, sizeof(*x));
    x->req = req;
    x->h = h;
    x->in_handler = true;
    format_peer(remote, INET6_ADDRSTRLEN + 16, req->conn);
    x->pub.remote = remote;
    x->pub.tls = h->ssl != NULL;
    x->pub.method = h2o_strdup(&req->pool, req->method.base, req->method.len).base;
    x->pub.path = h2o_strdup(&req->pool, req->path_normalized.base, req->path_normalized.len).base;
    x->pub.query = req->query_at != SIZE_MAX
                       ? h2o_strdup(&req->pool, req->path.base + req->query_at + 1,
                                    req->path.len - req->query_at - 1)
                             .base
                       : "";
    x->pub.body_len = req->entity.base != NULL ? req->entity.len : 0;
    x->pub.body =
        x->pub.body_len > 0 ? h2o_strdup(&req->pool, req->entity.base, req->entity.len).base : "";

    if (req->path.len == 0 || req->path.base[0] != '/') {
        httpd_respond_text(&x->pub, 400,
                           "request target must be an absolute path such as '/healthz'");
        goto out;
    }
    if (strlen(x->pub.path) != req->path_normalized.len ||
        strlen(x->pub.method) != req->method.len) {
        httpd_respond_text(&x->pub, 400, "request path or method holds a NUL byte");
        goto out;
    }

    for (size_t i = 0; i < h->nroutes; i++) {
        const struct httpd_route_entry *r = &h->routes[i];
        if (r->prefix_len > best_len && prefix_matches(r, x->pub.path)) {
            best_len = r->prefix_len;
            best = r;
        }
    }
    if (best == NULL) {
        char msg[RV_HTTPD_PREFIX_MAX + 64];
        snprintf(msg, sizeof(msg), "no route for '%.*s'", RV_HTTPD_PREFIX_MAX, x->pub.path);
        httpd_respond_text(&x->pub, 404, msg);
        goto out;
    }
    const struct httpd_route_entry *route = NULL;
    for (size_t i = 0; i < h->nroutes && route == NULL; i++) {
        const struct httpd_route_entry *r = &h->routes[i];
        if (strcmp(r->prefix, best->prefix) == 0 && method_matches(r, x->pub.method))
            route = r;
    }
    if (route == NULL) {
        char allow[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < h->nroutes; i++) {
            const struct httpd_route_entry *r = &h->routes[i];
            if (strcmp(r->prefix, best->prefix) != 0 || r->method == NULL)
                continue;
            int w = snprintf(allow + used, sizeof(allow) - used, "%s%s%s", used ? ", " : "",
                             r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
            if (w < 0 || (size_t)w >= sizeof(allow) - used)
                break;
            used += (size_t)w;
        }
        httpd_req_add_header(&x->pub, "allow", allow);
        char msg[RV_HTTPD_PREFIX_MAX + 320];
        snprintf(msg, sizeof(msg), "method '%.16s' is not allowed on '%.*s'; use %s", x->pub.method,
                 RV_HTTPD_PREFIX_MAX, x->pub.path, allow);
        httpd_respond_text(&x->pub, 405, msg);
        goto out;
    }

    route->fn(&x->pub, route->payload);
    if (!x->answered && !x->deferred) {
        log_error(HTTPD_LOG,
                  "handler for '%s %s' returned without answering; call httpd_respond or "
                  "httpd_req_defer",
                  x->pub.method, x->pub.path);
        httpd_respond_text(&x->pub, 500, "internal error: the request was not answered");
    }
out:
    x->in_handler = false;
    if (x->answered)
        send_answer(x);
    return 0;
}

int httpd_route(struct httpd *h, const char *method, const char *path_prefix,
                httpd_handler_fn handler, void *payload)
{
    struct httpd_route_entry *r;
    size_t n;

    if (h == NULL || handler == NULL || path_prefix == NULL || path_prefix[0] != '/' ||
        (method != NULL && (!is_token(method) || strlen(method) > 16)))
        return RV_EINVAL;
    n = strlen(path_prefix);
    if (n > RV_HTTPD_PREFIX_MAX || strpbrk(path_prefix, "?# \r\n\t") != NULL)
        return RV_EINVAL;
    if (h->nroutes == RV_HTTPD_ROUTES_MAX) {
        log_error(HTTPD_LOG, "cannot add route '%s': the server has %d routes already", path_prefix,
                  RV_HTTPD_ROUTES_MAX);
        return RV_ELIMIT;
    }
    r = &h->routes[h->nroutes];
    memset(r, 0, sizeof(*r));
    r->prefix = strdup(path_prefix);
    r->method = method != NULL ? strdup(method) : NULL;
    if (r->prefix == NULL || (method != NULL && r->method == NULL)) {
        free(r->prefix);
        free(r->method);
        return RV_ENOMEM;
    }
    r->prefix_len = n;
    r->fn = handler;
    r->payload = payload;
    h->nroutes++;
    return 0;
}

/* --- connections --- */

static void maybe_finish(struct httpd *h);

static void conn_closed(uv_handle_t *handle)
{
    struct httpd_conn *c = (struct httpd_conn *)handle;
    struct httpd *h = c->h;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    assert(h->nconns > 0);
    h->nconns--;
    free(c);
    if (h->closing)
        maybe_finish(h);
}

static void rejected_closed(uv_handle_t *handle)
{
    free(handle);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct httpd *h = listener->data;
    struct httpd_conn *c;

    if (status < 0) {
        log_warn(HTTPD_LOG, "accept on port %u failed: %s", (unsigned)h->port, uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Not accepting pauses the listener (libuv waits for uv_accept). */
        log_error(HTTPD_LOG,
                  "out of memory accepting a connection on port %u; no longer "
                  "accepting, restart reeve",
                  (unsigned)h->port);
        return;
    }
    c->h = h;
    if (uv_tcp_init(h->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || h->closing ||
        h->nconns >= h->conns_max) {
        if (h->nconns >= h->conns_max)
            log_warn(HTTPD_LOG, "port %u: %u connections open, closing a new one",
                     (unsigned)h->port, h->nconns);
        uv_close((uv_handle_t *)&c->tcp, rejected_closed);
        return;
    }
    c->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed);
    h2o_accept(&h->accept_ctx, sock);
}

/* --- lifetime --- */

static void release_memory(struct httpd *h)
{
    if (h->config_inited)
        h2o_config_dispose(&h->config);
    SSL_CTX_free(h->ssl);
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].prefix);
        free(h->routes[i].method);
    }
    free(h);
}

static void fin_second(uv_handle_t *handle)
{
    struct httpd *h = handle->data;
    httpd_closed_fn closed = h->closed;
    void *payload = h->closed_payload;

    release_memory(h);
    if (closed != NULL)
        closed(payload);
}

static void fin_first(uv_handle_t *handle)
{
    struct httpd *h = handle->data;

    uv_idle_init(h->loop, &h->fin[1]);
    h->fin[1].data = h;
    uv_close((uv_handle_t *)&h->fin[1], fin_second);
}

/* Everything is closed: dispose of h2o's context. Its timers are libuv
 * handles inside h->ctx that close asynchronously; libuv runs close
 * callbacks newest first, so a callback queued now could run before theirs.
 * Two rounds of closes (fin[0], then fin[1] from fin[0]'s callback) put the
 * free strictly after them. */
static void maybe_finish(struct httpd *h)
{
    if (!h->listener_closed || h->nconns > 0 || h->finishing)
        return;
    h->finishing = true;
    /* libh2o's dispose runs uv_run(UV_RUN_NOWAIT) to finish its timers. We
     * are in a close callback, where libuv has already taken the list of
     * handles it is closing, so the nested run does not disturb it. */
    if (h->ctx_inited)
        h2o_context_dispose(&h->ctx);
    uv_idle_init(h->loop, &h->fin[0]);
    h->fin[0].data = h;
    uv_close((uv_handle_t *)&h->fin[0], fin_first);
}

static void listener_closed(uv_handle_t *handle)
{
    struct httpd *h = handle->data;
    h->listener_closed = true;
    maybe_finish(h);
}

void httpd_close(struct httpd *h, httpd_closed_fn closed, void *payload)
{
    if (h == NULL)
        return;
    assert(!h->closing);
    h->closing = true;
    h->closed = closed;
    h->closed_payload = payload;
    /* New requests on kept-alive connections are answered with
     * "Connection: close" from now on. This is what
     * h2o_context_request_shutdown does for HTTP/1; that function also arms
     * an HTTP/2 GOAWAY timer, which would outlive the server. */
    h->ctx.shutdown_requested = 1;
    /* Shutting the read side makes idle kept-alive connections see EOF and
     * close now instead of at their idle timeout. A connection with a
     * request in a handler is not reading, so that request still gets its
     * answer; the EOF is seen after it. */
    for (struct httpd_conn *c = h->conns; c != NULL; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RD);
    }
    uv_close((uv_handle_t *)&h->listener, listener_closed);
}

static void failed_listener_closed(uv_handle_t *handle)
{
    release_memory(handle->data);
}

static int make_tls(SSL_CTX **out, const struct httpd_config *cfg, struct rv_error *err)
{
    int rc = 0;
    SSL_CTX *ssl = NULL;
    char why[256] = "";

    *out = NULL;
    if ((cfg->tls_cert_path == NULL) != (cfg->tls_key_path == NULL)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: TLS needs both a certificate and a key; set both paths or "
                          "neither");
        goto out;
    }
    if (cfg->tls_cert_path == NULL)
        goto out;
    ssl = SSL_CTX_new(TLS_server_method());
    if (ssl == NULL) {
        rc = rv_error_set(err, RV_ECRYPTO, false, "httpd: cannot create a TLS context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ssl, cfg->tls_cert_path) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: cannot load TLS certificate '%s': %s; give a PEM certificate "
                          "chain",
                          cfg->tls_cert_path, why);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, cfg->tls_key_path, SSL_FILETYPE_PEM) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: cannot load TLS key '%s': %s; give a PEM private key",
                          cfg->tls_key_path, why);
        goto out;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "httpd: TLS key '%s' does not match certificate '%s'", cfg->tls_key_path,
                          cfg->tls_cert_path);
        goto out;
    }
    *out = ssl;
    ssl = NULL;
out:
    ERR_clear_error();
    SSL_CTX_free(ssl);
    return rc;
}

int httpd_new(struct httpd **out, uv_loop_t *loop, const struct httpd_config *cfg,
              struct rv_error *err)
{
    int rc = 0;
    int fd = -1;
    struct httpd *h = NULL;
    struct sockaddr_storage ss;
    bool handle_inited = false;

    if (out != NULL)
        *out = NULL;
    if (out == NULL || loop == NULL || cfg == NULL) {
        rc = rv_error_set(err, RV_EINVAL, false, "httpd: missing argument");
        goto out;
    }
    rc = parse_listen(&ss, cfg->listen, err);
    if (rc < 0)
        goto out;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "httpd: out of memory");
        goto out;
    }
    h->loop = loop;
    h->body_max = cfg->body_max != 0 ? cfg->body_max : RV_HTTP_BODY_MAX;
    h->conns_max = cfg->conns_max != 0 ? cfg->conns_max : RV_HTTPD_CONNS_MAX;
    rc = make_tls(&h->ssl, cfg, err);
    if (rc < 0)
        goto out;
    rc = bind_socket(&fd, &h->port, &ss, cfg->listen, err);
    if (rc < 0)
        goto out;

    h2o_config_init(&h->config);
    h->config_inited = true;
    h->config.max_request_entity_size = h->body_max;
    h->config.http1.req_timeout =
        cfg->req_timeout_ms != 0 ? cfg->req_timeout_ms : RV_HTTPD_REQ_TIMEOUT_MS;
    h->config.http1.upgrade_to_http2 = 0;
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("reeve"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct httpd_h2o_handler *handler =
        (struct httpd_h2o_handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->h = h;

    int uvrc = uv_tcp_init(loop, &h->listener);
    if (uvrc == 0) {
        handle_inited = true;
        h->listener.data = h;
        uvrc = uv_tcp_open(&h->listener, fd);
    }
    if (uvrc == 0) {
        fd = -1; /* the handle owns it */
        uvrc = uv_listen((uv_stream_t *)&h->listener, RV_HTTPD_BACKLOG, on_connection);
    }
    if (uvrc != 0) {
        rc = rv_error_set(err, RV_EIO, false, "httpd: cannot serve '%s': %s", cfg->listen,
                          uv_strerror(uvrc));
        goto out;
    }

    h2o_context_init(&h->ctx, loop, &h->config);
    h->ctx_inited = true;
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    h->accept_ctx.ssl_ctx = h->ssl;
    log_info(HTTPD_LOG, "listening on %s (port %u%s)", cfg->listen, (unsigned)h->port,
             h->ssl != NULL ? ", tls" : "");
    *out = h;
    h = NULL;
out:
    if (fd >= 0)
        close(fd);
    if (h != NULL) {
        if (handle_inited) /* freed from the close callback */
            uv_close((uv_handle_t *)&h->listener, failed_listener_closed);
        else
            release_memory(h);
    }
    return rc;
}

uint16_t httpd_port(const struct httpd *h)
{
    return h != NULL ? h->port : 0;
}
