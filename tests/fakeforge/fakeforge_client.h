/* fakeforge_client.h - start tests/fakeforge/fakeforge.py from a C test and
 * read what it recorded. Header-only (static functions) for test programs.
 *
 *   struct fakeforge ff;
 *   if (fakeforge_start(&ff, "github", "T", "--fail-first", "2", NULL) != 0) skip();
 *   ... post to ff.url ...
 *   json_t *st = fakeforge_get(&ff, "/_fake/statuses");   // {"statuses": [...]}
 *   fakeforge_stop(&ff);
 */
#ifndef REEVE_FAKEFORGE_CLIENT_H
#define REEVE_FAKEFORGE_CLIENT_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"

struct fakeforge {
    pid_t pid;
    int port;
    char url[64]; /* http://127.0.0.1:PORT */
    char dir[64]; /* temp dir for the port file */
};

static void fakeforge_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Path of fakeforge.py from REEVE_SOURCE_DIR; NULL when unknown. */
static const char *fakeforge_script(char *out, size_t out_size)
{
    const char *src = getenv("REEVE_SOURCE_DIR");
    if (src == NULL)
        return NULL;
    snprintf(out, out_size, "%s/tests/fakeforge/fakeforge.py", src);
    return access(out, R_OK) == 0 ? out : NULL;
}

/* Start the fake; extra arguments end with NULL. Returns 0, or -1 when it
 * cannot start (no python3, no REEVE_SOURCE_DIR): the caller skips. */
static int fakeforge_start(struct fakeforge *ff, const char *kind, const char *token, ...)
{
    char script[4096], portfile[128];
    const char *argv[40];
    size_t argc = 0;
    va_list ap;

    memset(ff, 0, sizeof(*ff));
    if (fakeforge_script(script, sizeof(script)) == NULL)
        return -1;
    snprintf(ff->dir, sizeof(ff->dir), "/tmp/rv-fakeforge-XXXXXX");
    if (mkdtemp(ff->dir) == NULL)
        return -1;
    snprintf(portfile, sizeof(portfile), "%s/port", ff->dir);
    argv[argc++] = "python3";
    argv[argc++] = script;
    argv[argc++] = "--kind";
    argv[argc++] = kind;
    argv[argc++] = "--token";
    argv[argc++] = token;
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--port-file";
    argv[argc++] = portfile;
    va_start(ap, token);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 38)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    ff->pid = fork();
    if (ff->pid < 0)
        return -1;
    if (ff->pid == 0) {
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    /* Wait up to 10 s for the port file. */
    for (int i = 0; i < 1000; i++) {
        FILE *fh = fopen(portfile, "r");
        if (fh) {
            int ok = fscanf(fh, "%d", &ff->port) == 1;
            fclose(fh);
            if (ok && ff->port > 0) {
                snprintf(ff->url, sizeof(ff->url), "http://127.0.0.1:%d", ff->port);
                return 0;
            }
        }
        int status;
        if (waitpid(ff->pid, &status, WNOHANG) == ff->pid) {
            ff->pid = 0;
            return -1;
        }
        fakeforge_sleep_ms(10);
    }
    kill(ff->pid, SIGKILL);
    waitpid(ff->pid, NULL, 0);
    ff->pid = 0;
    return -1;
}

static void fakeforge_stop(struct fakeforge *ff)
{
    char path[160];
    if (ff->pid > 0) {
        kill(ff->pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
            if (waitpid(ff->pid, NULL, WNOHANG) == ff->pid) {
                ff->pid = 0;
                break;
            }
            fakeforge_sleep_ms(10);
        }
        if (ff->pid > 0) {
            kill(ff->pid, SIGKILL);
            waitpid(ff->pid, NULL, 0);
        }
        ff->pid = 0;
    }
    if (ff->dir[0]) {
        snprintf(path, sizeof(path), "%s/port", ff->dir);
        unlink(path);
        rmdir(ff->dir);
        ff->dir[0] = '\0';
    }
}

static size_t fakeforge_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* GET a /_fake/ endpoint and parse it; NULL on failure. json_decref() it. */
static json_t *fakeforge_get(const struct fakeforge *ff, const char *path)
{
    struct buf b = BUF_INIT;
    char url[256];
    json_t *doc = NULL;
    long code = 0;
    CURL *c = curl_easy_init();

    if (c == NULL)
        return NULL;
    snprintf(url, sizeof(url), "%s%s", ff->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fakeforge_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
        doc = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    curl_easy_cleanup(c);
    buf_release(&b);
    return doc;
}

/* The array under key in GET path ("statuses" or "requests"); a new reference. */
static json_t *fakeforge_list(const struct fakeforge *ff, const char *what)
{
    char path[64];
    snprintf(path, sizeof(path), "/_fake/%s", what);
    json_t *doc = fakeforge_get(ff, path);
    json_t *list = json_incref(json_object_get(doc, what));
    json_decref(doc);
    return list;
}

#endif
