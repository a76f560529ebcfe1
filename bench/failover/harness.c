/* harness.c - reeve-failover-bench: the helpers of bench/failover/run.sh.
 *
 *   reeve-failover-bench dcs PORTFILE TOKENDIR NAMESPACE CLUSTER NODE...
 *       Host the reconciler's DCS and agent API in this process on
 *       127.0.0.1 (a free port, written to PORTFILE once listening), issue
 *       one registration token per NODE into TOKENDIR/NODE.token (0600),
 *       and serve until SIGTERM or SIGINT.
 *
 *   reeve-failover-bench probe TIMEOUT_MS INTERVAL_MS PIDS CONNINFO...
 *       Connect to every CONNINFO (the candidate nodes: every node but the
 *       primary about to die), then send SIGKILL to each pid of PIDS (comma
 *       separated, in order) and from then on try
 *       `INSERT INTO bench_failover DEFAULT VALUES` on every candidate every
 *       INTERVAL_MS, reconnecting whatever connection broke. Prints
 *       "ok MS INDEX" (milliseconds from the first kill to the first
 *       committed insert, and which CONNINFO took it, from 0) and exits 0,
 *       or prints "timeout MS" and exits 1 after TIMEOUT_MS.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <libpq-fe.h>
#include <uv.h>

#include "agentapi.h"
#include "dcs.h"
#include "httpd.h"
#include "log.h"

/* --- dcs --- */

struct recon {
    uv_loop_t loop;
    struct httpd *h;
    struct dcs *dcs;
    struct agentapi *api;
    uv_signal_t sig[2];
    bool stopping;
};

static int64_t loop_clock(void *payload)
{
    return (int64_t)uv_now(payload);
}

static void on_httpd_closed(void *payload)
{
    (void)payload;
}

static void on_api_closed(void *payload)
{
    struct recon *r = payload;
    httpd_close(r->h, on_httpd_closed, r);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    struct recon *r = s->data;
    if (r->stopping)
        return;
    r->stopping = true;
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&r->sig[i], NULL);
    agentapi_close(r->api, on_api_closed, r);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len;
    if (close(fd) != 0)
        ok = false;
    return ok ? 0 : -1;
}

static int cmd_dcs(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr,
                "usage: reeve-failover-bench dcs PORTFILE TOKENDIR NAMESPACE CLUSTER NODE...\n");
        return 2;
    }
    const char *portfile = argv[1], *tokdir = argv[2], *ns = argv[3], *cluster = argv[4];
    static struct recon r;
    struct rv_error err = {0};
    struct httpd_config hc = {.listen = "127.0.0.1:0"};
    log_set_level(LOG_WARN);
    if (uv_loop_init(&r.loop) != 0)
        return 1;
    if (dcs_open(&r.dcs, NULL, loop_clock, &r.loop, &err) != 0) {
        fprintf(stderr, "dcs_open: %s\n", err.msg);
        return 1;
    }
    if (httpd_new(&r.h, &r.loop, &hc, &err) != 0) {
        fprintf(stderr, "httpd_new: %s\n", err.msg);
        return 1;
    }
    if (agentapi_new(&r.api, &r.loop, r.h, r.dcs, NULL, NULL, &err) != 0) {
        fprintf(stderr, "agentapi_new: %s\n", err.msg);
        return 1;
    }
    for (int i = 5; i < argc; i++) {
        char tok[AGENTAPI_TOKEN_HEX_SIZE], path[512];
        if (agentapi_registration_issue(tok, r.dcs, ns, cluster, argv[i], &err) != 0) {
            fprintf(stderr, "token for %s: %s\n", argv[i], err.msg);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s.token", tokdir, argv[i]);
        if (write_file(path, tok, 0600) != 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    int signums[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&r.loop, &r.sig[i]);
        r.sig[i].data = &r;
        uv_signal_start(&r.sig[i], on_signal, signums[i]);
    }
    char port[16], tmp[512];
    snprintf(port, sizeof port, "%u\n", (unsigned)httpd_port(r.h));
    snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
    if (write_file(tmp, port, 0644) != 0 || rename(tmp, portfile) != 0) {
        fprintf(stderr, "%s: %s\n", portfile, strerror(errno));
        return 1;
    }
    uv_run(&r.loop, UV_RUN_DEFAULT);
    agentapi_free(r.api);
    dcs_free(r.dcs);
    return uv_loop_close(&r.loop) == 0 ? 0 : 1;
}

/* --- probe --- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#define PROBE_MAX 8

static PGconn *probe_connect(const char *conninfo)
{
    char ci[1024];
    snprintf(ci, sizeof ci, "%s connect_timeout=2 options='-c statement_timeout=1000'", conninfo);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static bool probe_insert(PGconn **c, const char *conninfo)
{
    if (*c == NULL && (*c = probe_connect(conninfo)) == NULL)
        return false;
    PGresult *res = PQexec(*c, "INSERT INTO bench_failover DEFAULT VALUES");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok && PQstatus(*c) != CONNECTION_OK) {
        PQfinish(*c);
        *c = NULL;
    }
    return ok;
}

static int cmd_probe(int argc, char **argv)
{
    if (argc < 5 || argc - 4 > PROBE_MAX) {
        fprintf(stderr,
                "usage: reeve-failover-bench probe TIMEOUT_MS INTERVAL_MS PIDS CONNINFO...\n");
        return 2;
    }
    int64_t timeout = strtoll(argv[1], NULL, 10), interval = strtoll(argv[2], NULL, 10);
    int n = argc - 4;
    PGconn *conns[PROBE_MAX] = {0};
    for (int i = 0; i < n; i++)
        conns[i] = probe_connect(argv[4 + i]);
    pid_t pids[8];
    int npids = 0;
    for (char *s = argv[3], *end; *s != '\0' && npids < 8; s = end) {
        long v = strtol(s, &end, 10);
        if (end == s || v <= 1) {
            fprintf(stderr, "probe: bad pid list '%s'\n", argv[3]);
            return 2;
        }
        pids[npids++] = (pid_t)v;
        if (*end == ',')
            end++;
    }
    int64_t t0 = now_ms();
    for (int i = 0; i < npids; i++)
        if (kill(pids[i], SIGKILL) != 0)
            fprintf(stderr, "probe: kill %d: %s\n", (int)pids[i], strerror(errno));
    int rc = 1;
    for (;;) {
        int64_t round = now_ms();
        int won = -1;
        for (int i = 0; i < n && won < 0; i++)
            if (probe_insert(&conns[i], argv[4 + i]))
                won = i;
        int64_t t = now_ms();
        if (won >= 0) {
            printf("ok %lld %d\n", (long long)(t - t0), won);
            rc = 0;
            break;
        }
        if (t - t0 >= timeout) {
            printf("timeout %lld\n", (long long)(t - t0));
            break;
        }
        sleep_ms(interval - (t - round));
    }
    for (int i = 0; i < n; i++)
        PQfinish(conns[i]);
    fflush(stdout);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "dcs") == 0)
        return cmd_dcs(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "probe") == 0)
        return cmd_probe(argc - 1, argv + 1);
    fprintf(stderr, "usage: reeve-failover-bench dcs|probe ...\n");
    return 2;
}
