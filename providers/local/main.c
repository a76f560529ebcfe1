/* main.c - reeve-provider-local: the provider protocol (providers/PROTOCOL.md)
 * on stdin/stdout, one request at a time, for the instances of local.c.
 * stderr is the log. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "limits.h"
#include "local.h"
#include "log.h"

#define COMP "local"
#define ID_MAX INT64_C(9007199254740991)

/* Read one line of at most RV_PROVIDER_FRAME_MAX bytes into b (without the
 * newline). Returns 1 for a line, 0 at end of input, -1 for a line that
 * was too long (it is skipped). */
static int read_frame(struct buf *b, FILE *in)
{
    bool too_long = false;
    int c;
    buf_clear(b);
    while ((c = getc(in)) != EOF && c != '\n') {
        if (too_long)
            continue;
        if (b->len >= RV_PROVIDER_FRAME_MAX || buf_putc(b, (char)c) != 0) {
            too_long = true;
            buf_clear(b);
        }
    }
    if (too_long)
        return -1;
    if (c == EOF && b->len == 0)
        return 0;
    return 1;
}

/* Write one frame with a single write (retried only if cut short). */
static int send_frame(json_t *frame)
{
    char *text = json_dumps(frame, JSON_COMPACT);
    if (text == NULL)
        return -1;
    size_t len = strlen(text);
    int rc = 0;
    if (len > RV_PROVIDER_FRAME_MAX) {
        free(text);
        return -2;
    }
    text[len] = '\n';
    /* json_dumps' buffer ends in the NUL we just replaced; write len + 1. */
    size_t off = 0;
    while (off < len + 1) {
        ssize_t w = write(STDOUT_FILENO, text + off, len + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    free(text);
    return rc;
}

static const char *code_name(int code)
{
    switch (code) {
    case RV_ENOTFOUND:
        return "not_found";
    case RV_EINVAL:
        return "invalid";
    case RV_ECONFLICT:
        return "conflict";
    case RV_ELIMIT:
        return "quota";
    case RV_EUNAVAIL:
        return "unavailable";
    case RV_ETIMEOUT:
        return "timeout";
    default:
        return "internal";
    }
}

static int reply_error(json_int_t id, const struct rv_error *err)
{
    json_t *f =
        json_pack("{s:s, s:I, s:{s:s, s:b, s:s}}", "type", "reply", "id", id, "error", "code",
                  code_name(err->code), "retryable", err->retryable, "message", err->msg);
    int rc = f != NULL ? send_frame(f) : -1;
    json_decref(f);
    return rc;
}

static int reply_result(json_int_t id, json_t *result)
{
    json_t *f = json_pack("{s:s, s:I, s:O}", "type", "reply", "id", id, "result", result);
    int rc = f != NULL ? send_frame(f) : -1;
    json_decref(f);
    if (rc == -2) {
        struct rv_error err = {0};
        rv_error_set(&err, RV_EINVAL, false,
                     "the result is larger than a frame (1 MiB); narrow the call, e.g. list by "
                     "labels");
        rc = reply_error(id, &err);
    }
    return rc;
}

static int handshake(struct local *l, const char *line, size_t len)
{
    json_error_t je;
    json_t *hello = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *v;
    int rc = -1;
    size_t i;
    bool v1 = false;
    if (!json_is_object(hello) ||
        strcmp(json_string_value(json_object_get(hello, "type")) ?: "", "hello") != 0) {
        log_error(COMP, "reeve's first frame is not a hello; exiting");
        goto out;
    }
    json_array_foreach(json_object_get(hello, "protocol_versions"), i,
                       v) if (json_is_integer(v) && json_integer_value(v) == 1) v1 = true;
    if (!v1) {
        log_error(COMP, "reeve does not offer protocol version 1, the only one spoken here; "
                        "upgrade one of them");
        goto out;
    }
    json_t *caps = json_array();
    json_array_foreach(json_object_get(hello, "capabilities"), i,
                       v) if (json_is_string(v) && (strcmp(json_string_value(v), "resize") == 0 ||
                                                   strcmp(json_string_value(v), "upgrade") == 0))
        json_array_append_new(caps, json_string(json_string_value(v)));
    json_t *ans = json_pack("{s:s, s:i, s:o, s:o}", "type", "hello", "protocol_version", 1,
                            "capabilities", caps, "describe", local_describe(l));
    rc = ans != NULL ? send_frame(ans) : -1;
    json_decref(ans);
out:
    json_decref(hello);
    return rc;
}

/* Validate a request frame; on a problem with a usable id, *id is set and
 * err says what, so the caller can answer. Returns 0 when req is good. */
static int check_request(json_int_t *id, const json_t *req, struct rv_error *err)
{
    static const char *const fields[] = {"type",   "id", "method", "deadline_ms", "idempotency_key",
                                         "params", NULL};
    const char *k;
    json_t *v;
    *id = 0;
    if (!json_is_object(req))
        return rv_error_set(err, RV_EPARSE, false, "a frame that is not a JSON object");
    v = json_object_get(req, "id");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > ID_MAX)
        return rv_error_set(err, RV_EPARSE, false, "a frame without a valid id");
    if (strcmp(json_string_value(json_object_get(req, "type")) ?: "", "request") != 0)
        return rv_error_set(err, RV_EPARSE, false, "a frame that is not a request");
    *id = json_integer_value(v);
    json_object_foreach((json_t *)req, k, v)
    {
        bool known = false;
        for (size_t i = 0; fields[i] != NULL; i++)
            known = known || strcmp(fields[i], k) == 0;
        if (!known)
            return rv_error_set(err, RV_EINVAL, false, "request field '%.64s' is unknown", k);
    }
    const char *m = json_string_value(json_object_get(req, "method"));
    if (m == NULL || strlen(m) == 0 || strlen(m) > RV_PROVIDER_METHOD_MAX)
        return rv_error_set(err, RV_EINVAL, false, "request.method must be a method name");
    v = json_object_get(req, "deadline_ms");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > RV_PROVIDER_DEADLINE_MAX_MS)
        return rv_error_set(err, RV_EINVAL, false,
                            "request.deadline_ms must be an integer from 1 to %d",
                            RV_PROVIDER_DEADLINE_MAX_MS);
    v = json_object_get(req, "idempotency_key");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      json_string_length(v) > RV_PROVIDER_IDEMPOTENCY_KEY_MAX))
        return rv_error_set(err, RV_EINVAL, false,
                            "request.idempotency_key must be a string of 1 to %d bytes",
                            RV_PROVIDER_IDEMPOTENCY_KEY_MAX);
    if (!json_is_object(json_object_get(req, "params")))
        return rv_error_set(err, RV_EINVAL, false, "request.params must be an object");
    return 0;
}

static int dispatch(json_t **out, struct local *l, const json_t *req, struct rv_error *err)
{
    const char *m = json_string_value(json_object_get(req, "method"));
    const json_t *params = json_object_get(req, "params");
    const char *key = json_string_value(json_object_get(req, "idempotency_key"));
    int64_t deadline = (int64_t)json_integer_value(json_object_get(req, "deadline_ms"));
    if (strcmp(m, "describe") == 0) {
        if (json_object_size(params) != 0)
            return rv_error_set(err, RV_EINVAL, false, "describe takes no params");
        *out = local_describe(l);
        return 0;
    }
    if (strcmp(m, "list_instances") == 0)
        return local_list(out, l, params, err);
    if (strcmp(m, "create_instance") == 0)
        return local_create(out, l, params, key, err);
    if (strcmp(m, "delete_instance") == 0)
        return local_delete(out, l, params, key, deadline, err);
    if (strcmp(m, "resize_instance") == 0)
        return local_resize(out, l, params, key, err);
    if (strcmp(m, "upgrade_instance") == 0)
        return local_upgrade(out, l, params, key, deadline, err);
    return rv_error_set(err, RV_EINVAL, false,
                        "method '%.64s' is not offered by the local provider (no volumes)", m);
}

int main(void)
{
    struct local l;
    struct rv_error err = {0};
    struct buf line = BUF_INIT;
    int status = 0;
    bool greeted = false;
    signal(SIGPIPE, SIG_IGN);
    if (local_init(&l, &err) != 0) {
        log_error(COMP, "%s", err.msg);
        return 2;
    }
    log_info(COMP,
             "root '%s', agent '%s', user '%s', network %u.%u.%u.0; resize records cpu "
             "and memory only and accepts storage growth",
             l.root, l.agent_bin, l.user, l.net[0], l.net[1], l.net[2]);
    for (;;) {
        int r = read_frame(&line, stdin);
        if (r == 0)
            break;
        if (r < 0) {
            log_error(COMP, "a frame longer than %d bytes; ignored", RV_PROVIDER_FRAME_MAX);
            continue;
        }
        if (line.len == 0 || strspn(line.data, " \t\r") == line.len)
            continue;
        if (!greeted) {
            if (handshake(&l, line.data, line.len) != 0) {
                status = 2;
                break;
            }
            greeted = true;
            continue;
        }
        json_error_t je;
        json_t *req = json_loadb(line.data, line.len, JSON_REJECT_DUPLICATES, &je);
        json_t *result = NULL;
        json_int_t id = 0;
        rv_error_clear(&err);
        if (req == NULL) {
            log_error(COMP, "a frame that is not JSON (%s at column %d); ignored", je.text,
                      je.column);
            continue;
        }
        int rc = check_request(&id, req, &err);
        if (rc == 0) {
            log_info(COMP, "%s id=%lld", json_string_value(json_object_get(req, "method")),
                     (long long)id);
            rc = dispatch(&result, &l, req, &err);
        }
        if (rc != 0 && id == 0)
            log_error(COMP, "%s; ignored", err.msg);
        else if (rc != 0) {
            log_info(COMP, "id=%lld: %s: %s", (long long)id, code_name(err.code), err.msg);
            if (reply_error(id, &err) != 0)
                status = 1;
        } else if (reply_result(id, result) != 0) {
            status = 1;
        }
        json_decref(result);
        json_decref(req);
        if (status != 0) {
            log_error(COMP, "cannot write to stdout; exiting");
            break;
        }
    }
    buf_release(&line);
    local_release(&l);
    return status;
}
