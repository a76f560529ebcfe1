#include "cli_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "limits.h"

struct body {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > RV_CLI_HTTP_BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    char *d = realloc(b->data, b->len + n + 1);
    if (d == NULL)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

/* The server's own words for a refusal: the JSON "error" member, else the
 * start of the body on one line. */
static void print_refusal(const struct cli_http_req *r, long code, const struct body *b)
{
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    char snippet[301] = "";
    if (msg == NULL && b->data != NULL) {
        snprintf(snippet, sizeof(snippet), "%s", b->data);
        for (char *p = snippet; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    }
    fprintf(stderr, "error: %s answered HTTP %ld: %s\n", r->url, code,
            msg ? msg : snippet[0] ? snippet : "(no message)");
    if (code == 404 && msg == NULL)
        fprintf(stderr, "  this reeve has no %s (is it older than this command?)\n", r->api);
    json_decref(j);
}

static enum cli_http_result call(struct body *b, const struct cli_http_req *r)
{
    char errbuf[CURL_ERROR_SIZE] = "", agent[64], accept[96];
    long code = 0;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        fputs("error: cannot start the HTTP client\n", stderr);
        return CLI_HTTP_UNREACHABLE;
    }
    snprintf(agent, sizeof(agent), "%s/%s", r->agent, REEVE_VERSION);
    snprintf(accept, sizeof(accept), "Accept: %s", r->accept ? r->accept : "application/json");
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)RV_CLI_HTTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
    struct curl_slist *hdr = curl_slist_append(NULL, accept);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        if (b->too_big)
            fprintf(stderr, "error: %s: the answer is larger than %d MiB\n", r->url,
                    RV_CLI_HTTP_BODY_MAX / (1024 * 1024));
        else
            fprintf(stderr,
                    "error: cannot reach reeve at %s: %s\n"
                    "  is 'reeve serve' running? Name it with --server URL\n",
                    r->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return CLI_HTTP_UNREACHABLE;
    }
    if (code != 200) {
        print_refusal(r, code, b);
        return CLI_HTTP_REFUSED;
    }
    return CLI_HTTP_OK;
}

enum cli_http_result cli_http_json(json_t **out, const struct cli_http_req *r)
{
    struct body b = {0};
    json_error_t jerr;
    *out = NULL;
    enum cli_http_result res = call(&b, r);
    if (res == CLI_HTTP_OK) {
        json_t *j = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL || !json_is_object(j)) {
            fprintf(stderr, "error: %s: the answer is not a JSON object (%s)\n", r->url,
                    j ? "another JSON value" : jerr.text);
            json_decref(j);
            res = CLI_HTTP_MALFORMED;
        } else {
            *out = j;
        }
    }
    free(b.data);
    return res;
}

enum cli_http_result cli_http_text(char **out, const struct cli_http_req *r)
{
    struct body b = {0};
    *out = NULL;
    enum cli_http_result res = call(&b, r);
    if (res == CLI_HTTP_OK && b.data == NULL) {
        fprintf(stderr, "error: %s: the answer is empty\n", r->url);
        res = CLI_HTTP_MALFORMED;
    }
    if (res == CLI_HTTP_OK) {
        *out = b.data;
        b.data = NULL;
    }
    free(b.data);
    return res;
}
