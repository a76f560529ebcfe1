/* test_httpd.c - lib/httpd through real HTTP: the server runs on a libuv loop
 * in the test's main thread, a client thread talks to it over 127.0.0.1 with
 * libcurl or a raw socket, and the main thread checks what the client saw
 * after the server has closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <uv.h>

#include "buf.h"
#include "err.h"
#include "httpd.h"

#define MAX_RESULTS 24

struct result {
    long status;
    char body[4096];
    size_t body_len;
    char headers[4096];
    long num_connects;
    long local_port;
    int curl_rc;
};

struct harness;
typedef void (*client_fn)(struct harness *t);

struct harness {
    uv_loop_t loop;
    struct httpd *h;
    uv_async_t done;
    pthread_t thread;
    client_fn client;
    uint16_t port;
    bool tls;
    bool closed;
    bool close_requested;
    bool client_signaled; /* the client sent "done" itself */
    struct result r[MAX_RESULTS];
    size_t nr;
    char raw[MAX_RESULTS][4096];
    size_t nraw;
    /* what handlers saw (written on the loop thread) */
    char seen_header[256];
    char seen_header_upper[256];
    char seen_remote[64];
    char seen_host[128];
    char seen_query[256];
    bool seen_tls;
    int add_header_bad_rc;
    int second_answer_rc;
    size_t seen_body_len;
    int handled;
    uv_timer_t timer;
    struct httpd_req *pending;
    uv_work_t work;
};

/* --- client side (runs in the client thread) --- */

static size_t collect_body(char *data, size_t size, size_t n, void *userp)
{
    struct result *r = userp;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->body_len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t collect_header(char *data, size_t size, size_t n, void *userp)
{
    struct result *r = userp;
    size_t len = size * n;
    size_t used = strlen(r->headers);
    size_t room = sizeof(r->headers) - 1 - used;
    size_t take = len < room ? len : room;
    memcpy(r->headers + used, data, take);
    r->headers[used + take] = '\0';
    return len;
}

static struct result *next_result(struct harness *t)
{
    assert(t->nr < MAX_RESULTS);
    struct result *r = &t->r[t->nr++];
    memset(r, 0, sizeof(*r));
    return r;
}

/* One request on the given handle (reused for keep-alive); headers is a
 * NULL-terminated list or NULL. */
static struct result *request(struct harness *t, CURL *c, const char *method, const char *path,
                              const char *body, size_t len, const char *const *headers)
{
    struct result *r = next_result(t);
    struct curl_slist *hl = NULL;
    char url[512];

    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", t->tls ? "https" : "http", (unsigned)t->port,
             path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (t->tls) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    hl = curl_slist_append(hl, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->num_connects);
    curl_easy_getinfo(c, CURLINFO_LOCAL_PORT, &r->local_port);
    curl_slist_free_all(hl);
    return r;
}

/* Send raw bytes on a new connection and read the answer until the server
 * closes or 5 s pass. */
static void raw_exchange(struct harness *t, const char *data, size_t len, bool shut_write)
{
    char *out = t->raw[t->nraw++];
    size_t got = 0;
    struct sockaddr_in sin;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    out[0] = '\0';
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(t->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        snprintf(out, 4096, "connect failed");
        return;
    }
    (void)!write(fd, data, len);
    if (shut_write)
        shutdown(fd, SHUT_WR);
    for (;;) {
        ssize_t n = read(fd, out + got, 4095 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == 4095)
            break;
    }
    out[got] = '\0';
    close(fd);
}

static void *client_main(void *arg)
{
    struct harness *t = arg;
    t->client(t);
    if (!t->client_signaled)
        uv_async_send(&t->done);
    return NULL;
}

/* --- server side (loop thread) --- */

static void on_closed(void *payload)
{
    struct harness *t = payload;
    __atomic_store_n(&t->closed, true, __ATOMIC_RELEASE);
}

static void on_done(uv_async_t *a)
{
    struct harness *t = a->data;
    if (!t->close_requested) {
        t->close_requested = true;
        httpd_close(t->h, on_closed, t);
    }
    uv_close((uv_handle_t *)a, NULL);
}

static void harness_start(struct harness *t, const struct httpd_config *cfg)
{
    struct rv_error err;
    memset(t, 0, sizeof(*t));
    assert_int_equal(uv_loop_init(&t->loop), 0);
    int rc = httpd_new(&t->h, &t->loop, cfg, &err);
    if (rc != 0)
        fail_msg("httpd_new: %s", err.msg);
    t->port = httpd_port(t->h);
    assert_true(t->port > 0);
    t->tls = cfg->tls_cert_path != NULL;
}

static void harness_run(struct harness *t, client_fn client)
{
    t->client = client;
    assert_int_equal(uv_async_init(&t->loop, &t->done, on_done), 0);
    t->done.data = t;
    assert_int_equal(pthread_create(&t->thread, NULL, client_main, t), 0);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    pthread_join(t->thread, NULL);
    assert_true(t->closed);
    /* every handle was closed: the server left nothing behind */
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

static const struct httpd_config plain = {.listen = "127.0.0.1:0"};

/* --- handlers --- */

static void h_ok(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    t->handled++;
    httpd_respond_text(req, 200, "ok");
}

static void h_named(struct httpd_req *req, void *payload)
{
    httpd_respond_text(req, 200, payload);
}

static void h_echo(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    struct buf b = BUF_INIT;
    t->seen_body_len = req->body_len;
    snprintf(t->seen_query, sizeof(t->seen_query), "%s", req->query);
    buf_printf(&b, "%s %s ?%s len=%zu body=", req->method, req->path, req->query, req->body_len);
    buf_append(&b, req->body, req->body_len);
    httpd_respond(req, 200, "application/octet-stream", b.data, b.len);
    buf_release(&b);
}

static void h_headers(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    const char *v = httpd_req_header(req, "x-custom-thing");
    const char *u = httpd_req_header(req, "X-CUSTOM-THING");
    const char *host = httpd_req_header(req, "Host");
    snprintf(t->seen_header, sizeof(t->seen_header), "%s", v ? v : "(null)");
    snprintf(t->seen_header_upper, sizeof(t->seen_header_upper), "%s", u ? u : "(null)");
    snprintf(t->seen_host, sizeof(t->seen_host), "%s", host ? host : "(null)");
    snprintf(t->seen_remote, sizeof(t->seen_remote), "%s", req->remote);
    t->seen_tls = req->tls;
    assert_null(httpd_req_header(req, "x-not-sent"));
    t->add_header_bad_rc = httpd_req_add_header(req, "x-evil", "a\r\nset-cookie: x=1");
    assert_int_equal(httpd_req_add_header(req, "X-Reeve-Test", "yes"), 0);
    assert_int_equal(httpd_req_add_header(req, "bad name", "v"), RV_EINVAL);
    httpd_respond(req, 201, "application/json", "{\"ok\":true}", 11);
    t->second_answer_rc = httpd_respond(req, 200, NULL, NULL, 0);
}

static void h_forgets(struct httpd_req *req, void *payload)
{
    (void)req;
    (void)payload;
}

static void on_timer_answer(uv_timer_t *timer)
{
    struct harness *t = timer->data;
    httpd_respond_text(t->pending, 200, "answered later from a timer");
    t->pending = NULL;
    uv_close((uv_handle_t *)timer, NULL);
}

static void h_async_timer(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    httpd_req_defer(req);
    t->pending = req;
    uv_timer_init(&t->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_timer_answer, 50, 0);
}

struct job {
    struct httpd_req *req;
    char result[64];
};

static void work_cb(uv_work_t *w)
{
    struct job *j = w->data;
    usleep(100 * 1000); /* blocking work belongs in the thread pool */
    snprintf(j->result, sizeof(j->result), "worked on %s", j->req->path);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct job *j = w->data;
    assert_int_equal(status, 0);
    httpd_respond_text(j->req, 202, j->result);
    free(j);
    free(w);
}

static void h_async_work(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    struct job *j = calloc(1, sizeof(*j));
    uv_work_t *w = calloc(1, sizeof(*w));
    j->req = req;
    w->data = j;
    httpd_req_defer(req);
    assert_int_equal(uv_queue_work(&t->loop, w, work_cb, after_work_cb), 0);
}

/* Closes the server while its own request is still pending. */
static void h_close_while_pending(struct httpd_req *req, void *payload)
{
    struct harness *t = payload;
    h_async_timer(req, payload);
    t->close_requested = true;
    httpd_close(t->h, on_closed, t);
}

/* --- tests --- */

static void client_routes(struct harness *t)
{
    CURL *c = curl_easy_init();
    request(t, c, "GET", "/healthz", NULL, 0, NULL);                       /* 0 */
    request(t, c, "GET", "/healthz/deep", NULL, 0, NULL);                  /* 1 */
    request(t, c, "GET", "/healthzx", NULL, 0, NULL);                      /* 2 */
    request(t, c, "POST", "/healthz", "x", 1, NULL);                       /* 3 */
    request(t, c, "HEAD", "/healthz", NULL, 0, NULL);                      /* 4 */
    request(t, c, "GET", "/api/v1/clusters/billing", NULL, 0, NULL);       /* 5 */
    request(t, c, "DELETE", "/api/other", NULL, 0, NULL);                  /* 6 */
    request(t, c, "GET", "/api", NULL, 0, NULL);                           /* 7 */
    request(t, c, "GET", "/", NULL, 0, NULL);                              /* 8 */
    request(t, c, "PUT", "/api/v1/clusters", NULL, 0, NULL);               /* 9 */
    request(t, c, "GET", "/api/v1/./clusters/../clusters", NULL, 0, NULL); /* 10 */
    request(t, c, "GET", "/forgets", NULL, 0, NULL);                       /* 11 */
    curl_easy_cleanup(c);
}

static void test_routes(void **state)
{
    (void)state;
    struct harness t;
    harness_start(&t, &plain);
    assert_int_equal(httpd_route(t.h, "GET", "/healthz", h_ok, &t), 0);
    assert_int_equal(httpd_route(t.h, NULL, "/api/", h_named, "api"), 0);
    assert_int_equal(httpd_route(t.h, "GET", "/api/v1/clusters", h_named, "clusters"), 0);
    assert_int_equal(httpd_route(t.h, "POST", "/api/v1/clusters", h_named, "create"), 0);
    assert_int_equal(httpd_route(t.h, "GET", "/forgets", h_forgets, &t), 0);
    /* bad routes are refused */
    assert_int_equal(httpd_route(t.h, "GET", "healthz", h_ok, &t), RV_EINVAL);
    assert_int_equal(httpd_route(t.h, "G ET", "/x", h_ok, &t), RV_EINVAL);
    assert_int_equal(httpd_route(t.h, "GET", "/x?y", h_ok, &t), RV_EINVAL);
    assert_int_equal(httpd_route(t.h, "GET", "/x", NULL, &t), RV_EINVAL);
    harness_run(&t, client_routes);

    assert_int_equal(t.r[0].status, 200);
    assert_string_equal(t.r[0].body, "ok\n");
    assert_non_null(strcasestr(t.r[0].headers, "content-type: text/plain; charset=utf-8"));
    assert_non_null(strcasestr(t.r[0].headers, "content-length: 3"));
    assert_int_equal(t.r[1].status, 200); /* prefix continues after '/' */
    assert_int_equal(t.r[2].status, 404); /* but not in the middle of a segment */
    assert_non_null(strstr(t.r[2].body, "no route for '/healthzx'"));
    assert_int_equal(t.r[3].status, 405);
    assert_non_null(strcasestr(t.r[3].headers, "allow: GET, HEAD"));
    assert_non_null(strstr(t.r[3].body, "method 'POST' is not allowed on '/healthz'"));
    assert_int_equal(t.r[4].status, 200); /* HEAD on a GET route, no body */
    assert_int_equal(t.r[4].body_len, 0);
    assert_int_equal(t.r[5].status, 200); /* longest prefix wins */
    assert_string_equal(t.r[5].body, "clusters\n");
    assert_int_equal(t.r[6].status, 200); /* any method */
    assert_string_equal(t.r[6].body, "api\n");
    assert_int_equal(t.r[7].status, 404); /* "/api/" does not match "/api" */
    assert_int_equal(t.r[8].status, 404);
    assert_int_equal(t.r[9].status, 405);
    assert_non_null(strcasestr(t.r[9].headers, "allow: GET, HEAD, POST"));
    assert_int_equal(t.r[10].status, 200); /* dot segments are resolved before routing */
    assert_string_equal(t.r[10].body, "clusters\n");
    assert_int_equal(t.r[11].status, 500); /* a handler that forgets to answer */
    assert_int_equal(t.handled, 3);
}

static void client_headers(struct harness *t)
{
    CURL *c = curl_easy_init();
    const char *hdrs[] = {"X-Custom-Thing: Hello There", NULL};
    request(t, c, "GET", "/headers", NULL, 0, hdrs);
    curl_easy_cleanup(c);
}

static void test_headers(void **state)
{
    (void)state;
    struct harness t;
    harness_start(&t, &plain);
    assert_int_equal(httpd_route(t.h, NULL, "/headers", h_headers, &t), 0);
    harness_run(&t, client_headers);
    assert_int_equal(t.r[0].status, 201);
    assert_string_equal(t.r[0].body, "{\"ok\":true}");
    assert_non_null(strcasestr(t.r[0].headers, "content-type: application/json"));
    assert_non_null(strcasestr(t.r[0].headers, "x-reeve-test: yes"));
    assert_null(strcasestr(t.r[0].headers, "set-cookie"));
    assert_string_equal(t.seen_header, "Hello There");
    assert_string_equal(t.seen_header_upper, "Hello There");
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)t.port);
    assert_string_equal(t.seen_host, host);
    assert_memory_equal(t.seen_remote, "127.0.0.1:", 10);
    assert_false(t.seen_tls);
    assert_int_equal(t.add_header_bad_rc, RV_EINVAL);
    assert_int_equal(t.second_answer_rc, RV_EINVAL);
}

static char big_body[3 * 1024 * 1024];

static void client_body(struct harness *t)
{
    CURL *c = curl_easy_init();
    static const char bin[] = "hello\0world";
    request(t, c, "POST", "/echo?a=1&b=two", bin, sizeof(bin) - 1, NULL); /* 0 */
    request(t, c, "POST", "/echo", big_body, 1024, NULL);                 /* 1: at the cap */
    request(t, c, "POST", "/echo", big_body, 1025, NULL);                 /* 2: one over */
    request(t, c, "GET", "/echo", NULL, 0, NULL);                         /* 3: no body */
    curl_easy_cleanup(c);
    /* A huge declared body is refused from its header alone: the client
     * sends no body at all and still gets its answer. */
    static const char huge[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 1000000000\r\n\r\n";
    raw_exchange(t, huge, sizeof(huge) - 1, false);
    /* chunked bodies are capped as they arrive */
    struct buf b = BUF_INIT;
    buf_puts(&b, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    buf_printf(&b, "%x\r\n", 2048);
    buf_append(&b, big_body, 2048);
    buf_puts(&b, "\r\n0\r\n\r\n");
    raw_exchange(t, b.data, b.len, false);
    buf_release(&b);
    static const char chunked_ok[] = "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    raw_exchange(t, chunked_ok, sizeof(chunked_ok) - 1, false);
    static const char bad_length[] = "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Length: twelve\r\n\r\n";
    raw_exchange(t, bad_length, sizeof(bad_length) - 1, false);
    static const char bad_target[] = "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_exchange(t, bad_target, sizeof(bad_target) - 1, false);
    static const char garbage[] = "this is not http\r\n\r\n";
    raw_exchange(t, garbage, sizeof(garbage) - 1, false);
}

static void test_body_and_limits(void **state)
{
    (void)state;
    struct harness t;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .body_max = 1024};
    memset(big_body, 'b', sizeof(big_body));
    harness_start(&t, &cfg);
    assert_int_equal(httpd_route(t.h, NULL, "/echo", h_echo, &t), 0);
    harness_run(&t, client_body);

    assert_int_equal(t.r[0].status, 200);
    assert_int_equal(t.r[0].body_len, strlen("POST /echo ?a=1&b=two len=11 body=") + 11);
    assert_memory_equal(t.r[0].body, "POST /echo ?a=1&b=two len=11 body=hello\0world",
                        t.r[0].body_len);
    assert_int_equal(t.r[1].status, 200);
    assert_non_null(strstr(t.r[1].body, "len=1024 "));
    assert_int_equal(t.r[2].status, 413);
    assert_int_equal(t.r[3].status, 200);
    assert_non_null(strstr(t.r[3].body, "len=0 body="));
    assert_memory_equal(t.raw[0], "HTTP/1.1 413", 12);
    assert_memory_equal(t.raw[1], "HTTP/1.1 413", 12);
    assert_memory_equal(t.raw[2], "HTTP/1.1 200", 12);
    assert_non_null(strstr(t.raw[2], "len=11 body=hello world"));
    assert_memory_equal(t.raw[3], "HTTP/1.1 400", 12);
    assert_memory_equal(t.raw[4], "HTTP/1.1 400", 12);
    assert_memory_equal(t.raw[5], "HTTP/1.1 400", 12);
    assert_int_equal(t.seen_body_len, 11); /* the last body the handler saw: chunked, decoded */
}

static void client_async(struct harness *t)
{
    CURL *c = curl_easy_init();
    request(t, c, "GET", "/timer", NULL, 0, NULL);
    request(t, c, "POST", "/work/item-7", "x", 1, NULL);
    request(t, c, "GET", "/timer", NULL, 0, NULL);
    curl_easy_cleanup(c);
}

static void test_async(void **state)
{
    (void)state;
    struct harness t;
    harness_start(&t, &plain);
    assert_int_equal(httpd_route(t.h, "GET", "/timer", h_async_timer, &t), 0);
    assert_int_equal(httpd_route(t.h, "POST", "/work", h_async_work, &t), 0);
    harness_run(&t, client_async);
    assert_int_equal(t.r[0].status, 200);
    assert_string_equal(t.r[0].body, "answered later from a timer\n");
    assert_int_equal(t.r[1].status, 202);
    assert_string_equal(t.r[1].body, "worked on /work/item-7\n");
    assert_int_equal(t.r[2].status, 200);
    /* the async answers kept the connection alive */
    assert_int_equal(t.r[1].num_connects, 0);
    assert_int_equal(t.r[2].num_connects, 0);
}

static void client_keepalive(struct harness *t)
{
    CURL *c = curl_easy_init();
    for (int i = 0; i < 4; i++)
        request(t, c, "GET", "/healthz", NULL, 0, NULL);
    /* a 404 does not cost the connection either */
    request(t, c, "GET", "/nothing", NULL, 0, NULL);
    request(t, c, "GET", "/healthz", NULL, 0, NULL);
    /* Keep this connection open while the server closes: the close must
     * not wait for the client to go away. */
    t->client_signaled = true;
    uv_async_send(&t->done);
    /* wait until the server is gone, then clean up the client */
    for (int i = 0; i < 200 && !__atomic_load_n(&t->closed, __ATOMIC_ACQUIRE); i++)
        usleep(10 * 1000);
    curl_easy_cleanup(c);
}

static void test_keepalive_and_close(void **state)
{
    (void)state;
    struct harness t;
    /* a long idle timeout: the close must not depend on it */
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .req_timeout_ms = 30000};
    harness_start(&t, &cfg);
    assert_int_equal(httpd_route(t.h, "GET", "/healthz", h_ok, &t), 0);
    struct timeval a, b;
    gettimeofday(&a, NULL);
    harness_run(&t, client_keepalive);
    gettimeofday(&b, NULL);
    for (int i = 0; i < 6; i++)
        assert_int_equal(t.r[i].curl_rc, 0);
    assert_int_equal(t.r[0].num_connects, 1);
    for (int i = 1; i < 6; i++) {
        assert_int_equal(t.r[i].num_connects, 0);
        assert_int_equal(t.r[i].local_port, t.r[0].local_port);
    }
    assert_int_equal(t.r[4].status, 404);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_usec - a.tv_usec) / 1e6;
    print_message("close with an idle kept-alive connection took %.3f s (idle timeout 30 s)\n",
                  secs);
    assert_true(secs < 25.0); /* not waiting for the idle timeout */
}

static void client_close_pending(struct harness *t)
{
    CURL *c = curl_easy_init();
    request(t, c, "GET", "/slow", NULL, 0, NULL);
    curl_easy_cleanup(c);
}

static void test_close_waits_for_pending(void **state)
{
    (void)state;
    struct harness t;
    harness_start(&t, &plain);
    assert_int_equal(httpd_route(t.h, "GET", "/slow", h_close_while_pending, &t), 0);
    harness_run(&t, client_close_pending);
    assert_int_equal(t.r[0].status, 200);
    assert_string_equal(t.r[0].body, "answered later from a timer\n");
    /* the server closed after its last answer */
    assert_non_null(strcasestr(t.r[0].headers, "connection: close"));
}

static void test_config_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct httpd *h = (struct httpd *)&loop;
    struct rv_error err;
    assert_int_equal(uv_loop_init(&loop), 0);

    struct httpd_config c1 = {.listen = "0.0.0.0:0"};
    assert_int_equal(httpd_new(&h, &loop, &c1, &err), RV_EINVAL);
    assert_null(h);
    assert_non_null(strstr(err.msg, "'0.0.0.0:0' is not a loopback address"));
    struct httpd_config c2 = {.listen = "127.0.0.1"};
    assert_int_equal(httpd_new(&h, &loop, &c2, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "is not 'IP:PORT'"));
    struct httpd_config c3 = {.listen = "127.0.0.1:99999"};
    assert_int_equal(httpd_new(&h, &loop, &c3, &err), RV_EINVAL);
    struct httpd_config c4 = {.listen = "example.com:80"};
    assert_int_equal(httpd_new(&h, &loop, &c4, &err), RV_EINVAL);
    struct httpd_config c5 = {.listen = "127.0.0.1:0", .tls_cert_path = "/nonexistent.pem"};
    assert_int_equal(httpd_new(&h, &loop, &c5, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "both a certificate and a key"));
    struct httpd_config c6 = {.listen = "127.0.0.1:0",
                              .tls_cert_path = "/nonexistent.pem",
                              .tls_key_path = "/nonexistent.key"};
    assert_int_equal(httpd_new(&h, &loop, &c6, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "cannot load TLS certificate '/nonexistent.pem'"));
    struct httpd_config c7 = {.listen = NULL};
    assert_int_equal(httpd_new(&h, &loop, &c7, &err), RV_EINVAL);

    /* a port in use */
    struct httpd *first = NULL;
    struct httpd_config ok = {.listen = "127.0.0.2:0"};
    assert_int_equal(httpd_new(&first, &loop, &ok, &err), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.2:%u", (unsigned)httpd_port(first));
    struct httpd_config busy = {.listen = addr};
    assert_int_equal(httpd_new(&h, &loop, &busy, &err), RV_EIO);
    assert_non_null(strstr(err.msg, "Address already in use"));
    assert_true(err.retryable);
    httpd_close(first, NULL, NULL);
    httpd_close(NULL, NULL, NULL);

    /* other spellings of loopback */
    struct httpd *named = NULL, *v6 = NULL;
    struct httpd_config lh = {.listen = "localhost:0"};
    assert_int_equal(httpd_new(&named, &loop, &lh, &err), 0);
    httpd_close(named, NULL, NULL);
    struct httpd_config six = {.listen = "[::1]:0"};
    int rc6 = httpd_new(&v6, &loop, &six, &err);
    assert_true(rc6 == 0 || rc6 == RV_EIO); /* RV_EIO: no IPv6 on this host */
    httpd_close(v6, NULL, NULL);
    struct httpd_config v6pub = {.listen = "[2001:db8::1]:0"};
    assert_int_equal(httpd_new(&v6, &loop, &v6pub, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "is not a loopback address"));
    struct httpd_config v6bad = {.listen = "[::1:0"};
    assert_int_equal(httpd_new(&v6, &loop, &v6bad, &err), RV_EINVAL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A self-signed certificate for 127.0.0.1, written as PEM files. */
static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void client_tls(struct harness *t)
{
    CURL *c = curl_easy_init();
    const char *hdrs[] = {"X-Custom-Thing: over tls", NULL};
    request(t, c, "GET", "/headers", NULL, 0, hdrs);
    request(t, c, "GET", "/headers", NULL, 0, hdrs);
    curl_easy_cleanup(c);
    /* plain HTTP to a TLS port gets nowhere */
    static const char get[] = "GET /headers HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_exchange(t, get, sizeof(get) - 1, true);
}

static void test_tls(void **state)
{
    (void)state;
    char dir[] = "/tmp/reeve-httpd-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[128], key[128];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    make_cert(cert, key);

    struct harness t;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .tls_cert_path = cert, .tls_key_path = key};
    harness_start(&t, &cfg);
    assert_int_equal(httpd_route(t.h, NULL, "/headers", h_headers, &t), 0);
    harness_run(&t, client_tls);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    assert_int_equal(t.r[0].curl_rc, 0);
    assert_int_equal(t.r[0].status, 201);
    assert_string_equal(t.seen_header, "over tls");
    assert_true(t.seen_tls);
    assert_int_equal(t.r[1].num_connects, 0);
    assert_null(strstr(t.raw[0], "HTTP/1.1 201"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_body_and_limits),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_keepalive_and_close),
        cmocka_unit_test(test_close_waits_for_pending),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_tls),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
