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
 *
 *   reeve-failover-bench writer ACKFILE CONNINFO...
 *       Until SIGTERM or SIGINT: `INSERT INTO bench_acked VALUES (n)` with
 *       n counting up from 1 (a new n for every attempt), on the node that
 *       took the last write, else on each CONNINFO in turn. Every n whose
 *       INSERT was acknowledged (autocommit, COMMAND_OK) is appended to
 *       ACKFILE, one per line, flushed at once. No statement timeout: a
 *       canceled wait for a synchronous standby is reported as success by
 *       PostgreSQL, which is not a durable acknowledgement.
 *
 *   reeve-failover-bench check ACKFILE CONNINFO
 *       Print "lost L of N": of the N ids in ACKFILE, the L absent from
 *       bench_acked on CONNINFO (the current primary). Exit 0, or 1 when
 *       the node cannot be read.
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

/* --- writer and check --- */

static volatile sig_atomic_t writer_stop;

static void on_writer_signal(int signum)
{
    (void)signum;
    writer_stop = 1;
}

static bool insert_id(PGconn **c, const char *conninfo, long long id)
{
    char sql[96];
    if (*c == NULL) {
        char ci[1024];
        snprintf(ci, sizeof ci, "%s connect_timeout=2", conninfo);
        *c = PQconnectdb(ci);
        if (PQstatus(*c) != CONNECTION_OK) {
            PQfinish(*c);
            *c = NULL;
            return false;
        }
    }
    snprintf(sql, sizeof sql, "INSERT INTO bench_acked VALUES (%lld)", id);
    PGresult *res = PQexec(*c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok && PQstatus(*c) != CONNECTION_OK) {
        PQfinish(*c);
        *c = NULL;
    }
    return ok;
}

static int cmd_writer(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > PROBE_MAX) {
        fprintf(stderr, "usage: reeve-failover-bench writer ACKFILE CONNINFO...\n");
        return 2;
    }
    int n = argc - 2, cur = 0;
    PGconn *conns[PROBE_MAX] = {0};
    FILE *ack = fopen(argv[1], "a");
    if (ack == NULL) {
        fprintf(stderr, "writer: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_writer_signal);
    signal(SIGINT, on_writer_signal);
    for (long long id = 1; !writer_stop; id++) {
        if (insert_id(&conns[cur], argv[2 + cur], id)) {
            fprintf(ack, "%lld\n", id);
            fflush(ack);
            sleep_ms(5);
        } else {
            cur = (cur + 1) % n;
            sleep_ms(20);
        }
    }
    for (int i = 0; i < n; i++)
        PQfinish(conns[i]);
    return fclose(ack) == 0 ? 0 : 1;
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reeve-failover-bench check ACKFILE CONNINFO\n");
        return 2;
    }
    char ci[1024], line[64];
    snprintf(ci, sizeof ci, "%s connect_timeout=5", argv[2]);
    PGconn *c = PQconnectdb(ci);
    PGresult *res = NULL;
    FILE *ack = fopen(argv[1], "r");
    long long acked = 0, lost = 0;
    int rc = 1;
    if (ack == NULL || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "check: cannot read %s or connect\n", argv[1]);
        goto out;
    }
    /* The acknowledged ids go into a temporary table in one COPY. */
    res = PQexec(c, "CREATE TEMP TABLE acked (id bigint)");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto out;
    PQclear(res);
    res = PQexec(c, "COPY acked FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN)
        goto out;
    while (fgets(line, sizeof line, ack) != NULL) {
        if (PQputCopyData(c, line, (int)strlen(line)) != 1)
            goto out;
        acked++;
    }
    if (PQputCopyEnd(c, NULL) != 1)
        goto out;
    PQclear(res);
    res = PQgetResult(c);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto out;
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
    res = PQexec(c, "SELECT count(*) FROM acked a WHERE NOT EXISTS"
                    " (SELECT 1 FROM bench_acked b WHERE b.id = a.id)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto out;
    lost = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    printf("lost %lld of %lld\n", lost, acked);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "check: %s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    if (ack != NULL)
        fclose(ack);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "dcs") == 0)
        return cmd_dcs(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "probe") == 0)
        return cmd_probe(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "writer") == 0)
        return cmd_writer(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "usage: reeve-failover-bench dcs|probe|writer|check ...\n");
    return 2;
}
