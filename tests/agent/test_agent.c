/* test_agent.c - reeve-agent end to end.
 *
 * The reconciler side (DCS, agent API on httpd) runs in this process on a
 * libuv loop on the main thread, listening on 127.0.0.1:0; the scenario
 * runs in a second thread. Two
 * reeve-agent processes (REEVE_AGENT_BIN) run node-a on 127.0.20.1 and
 * node-b on 127.0.20.2, each with its own data, socket and state dirs under
 * /tmp/reeve-agent-test-XXXXXX; as root the servers run as the postgres
 * user. The test watches the DCS through an observer node's agent token:
 * exactly one node leads, the other streams from it, a row written on the
 * primary reaches the replica. Then only the primary's agent is frozen
 * (SIGSTOP) with its server running: its watchdog must stop the server
 * before the replica takes over, so that at no sample are two nodes
 * writable, and the thawed agent must rejoin as a replica. Then the new
 * primary's server is killed and its
 * agent frozen, and the replica must take the leader key, promote and take
 * writes while the old primary takes none. Before that the reconciler
 * freezes for two TTLs: the primary must fence itself in time. After it,
 * the old primary's agent restarts and rejoins by rewind, and a graceful
 * stop of the new primary hands leadership back.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <uv.h>

#include "agentapi.h"
#include "recon.h"
#include "config.h"
#include "dcs.h"
#include "dcs_client.h"
#include "engine_pg.h"
#include "httpd.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define TTL_MS 3000
#define BOOT_WAIT_MS 60000
#define FAILOVER_WAIT_MS 30000
#define REPL_WAIT_MS 20000

struct node {
    const char *name;
    char addr[32];
    char data[256];
    char sock[256];
    char state[256];
    char cfg[256];
    char log[256];
    pid_t pid;
    struct pg_engine e;
    bool engine_ok;
};

struct fixture {
    char base[64];
    int port;
    struct recon r;
    struct dcs_client obs;
    struct node a, b, c;
    char tok[4][AGENTAPI_TOKEN_HEX_SIZE];
    void (*run)(struct fixture *f);
    pthread_t thread;
    char failure[512]; /* set by the scenario thread */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- nodes --- */

static bool have_pg(void)
{
    return access(PG_BIN "/initdb", X_OK) == 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* extra: more root fields of the configuration ("" for none). */
static void node_prepare(struct fixture *f, struct node *n, const char *name, const char *addr,
                         const char *reg, const char *extra)
{
    char tokpath[300], text[8192];
    n->name = name;
    snprintf(n->addr, sizeof n->addr, "%s", addr);
    snprintf(n->data, sizeof n->data, "%s/%s-data", f->base, name);
    snprintf(n->sock, sizeof n->sock, "%s/%s-sock", f->base, name);
    snprintf(n->state, sizeof n->state, "%s/%s-state", f->base, name);
    snprintf(n->cfg, sizeof n->cfg, "%s/%s.yaml", f->base, name);
    snprintf(n->log, sizeof n->log, "%s/%s-agent.log", f->base, name);
    snprintf(tokpath, sizeof tokpath, "%s/%s.token", f->base, name);
    write_text(tokpath, reg);
    snprintf(text, sizeof text,
             "node: %s\n"
             "cluster: test/pg\n"
             "reconciler: http://127.0.0.1:%u/\n"
             "registration_token: file:%s\n"
             "state_dir: %s\n"
             "ttl_ms: %d\n"
             "tick_ms: 300\n"
             "engine:\n"
             "  type: postgresql\n"
             "  bin_dir: %s\n"
             "  data_dir: %s\n"
             "  socket_dir: %s\n"
             "  listen_address: %s\n"
             "  port: %d\n"
             "  superuser: reeve\n"
             "  replication_password: env:REEVE_TEST_REPL_PASSWORD\n"
             "  os_user: postgres\n"
             "  no_sync: true\n"
             "  parameters:\n"
             "    wal_retrieve_retry_interval: 200ms\n"
             "%s",
             name, (unsigned)f->r.port, tokpath, n->state, TTL_MS, PG_BIN, n->data, n->sock, addr,
             f->port, extra);
    write_text(n->cfg, text);
    struct pg_engine_config pc = {
        .bin_dir = PG_BIN,
        .data_dir = n->data,
        .socket_dir = n->sock,
        .listen_address = addr,
        .port = f->port,
        .superuser = "reeve",
        .replication_user = "replicator",
        .replication_password = "x",
        .application_name = name,
        .os_user = geteuid() == 0 ? "postgres" : NULL,
    };
    struct rv_error err = {0};
    if (pg_engine_init(&n->e, &pc, &err) != 0)
        fail_msg("engine init %s: %s", name, err.msg);
    n->engine_ok = true;
}

/* The registration token is used once: delete it and its line from the
 * configuration, so a restart must use the saved agent token. */
static bool drop_registration(struct fixture *f, const struct node *n)
{
    char tokpath[300], text[4096], line[512];
    size_t len = 0;
    FILE *in = fopen(n->cfg, "r");
    if (in == NULL)
        return false;
    text[0] = '\0';
    while (fgets(line, sizeof line, in) != NULL)
        if (strncmp(line, "registration_token:", 19) != 0 && len + strlen(line) < sizeof text)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s", line);
    fclose(in);
    FILE *out = fopen(n->cfg, "w");
    if (out == NULL)
        return false;
    fputs(text, out);
    snprintf(tokpath, sizeof tokpath, "%s/%s.token", f->base, n->name);
    return fclose(out) == 0 && unlink(tokpath) == 0;
}

static bool node_spawn(struct node *n)
{
    const char *bin = getenv("REEVE_AGENT_BIN");
    if (bin == NULL)
        return false;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        FILE *lf = freopen(n->log, "a", stderr);
        if (lf == NULL)
            _exit(126);
        dup2(fileno(stderr), STDOUT_FILENO);
        execl(bin, "reeve-agent", "-c", n->cfg, "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    n->pid = pid;
    return true;
}

/* Wait up to ms for pid to exit; kill it after. Returns its status. */
static int node_reap(struct node *n, int ms)
{
    int status = -1;
    if (n->pid <= 0)
        return 0;
    int64_t deadline = now_ms() + ms;
    while (waitpid(n->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &status, 0);
            break;
        }
        sleep_ms(50);
    }
    n->pid = 0;
    return status;
}

static PGconn *node_connect(const struct node *n, int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *const k[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *const v[] = {n->sock, p, "reeve", "postgres", "2", NULL};
    PGconn *c = PQconnectdbParams(k, v, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Run q; first value to out. False on any error (quietly). */
static bool sql(const struct node *n, int port, const char *q, char *out, size_t cap)
{
    PGconn *c = node_connect(n, port);
    bool ok = false;
    if (c == NULL)
        return false;
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        ok = true;
        if (out != NULL)
            snprintf(out, cap, "%s",
                     st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    PQfinish(c);
    return ok;
}

static bool wait_value(const struct node *n, int port, const char *q, const char *want, int ms)
{
    char got[256] = "";
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        if (sql(n, port, q, got, sizeof got) && strcmp(got, want) == 0)
            return true;
        sleep_ms(100);
    }
    return false;
}

/* The value of key (a JSON object) through the observer, or NULL. */
static json_t *dcs_value(struct fixture *f, const char *key)
{
    struct rv_error err = {0};
    json_t *kv = NULL;
    if (dcs_client_get(&kv, NULL, &f->obs, key, &err) != 0) {
        fprintf(stderr, "observer get %s: %s\n", key, err.msg);
        return NULL;
    }
    json_t *v = kv != NULL ? json_incref(json_object_get(kv, "value")) : NULL;
    json_decref(kv);
    return v;
}

/* Wait until the leader key names a node (other than not_node when given). */
static bool wait_leader(struct fixture *f, const char *not_node, char *out, size_t cap, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        json_t *v = dcs_value(f, "/clusters/test/pg/leader");
        const char *n = json_string_value(json_object_get(v, "node"));
        bool ok = n != NULL && (not_node == NULL || strcmp(n, not_node) != 0);
        if (ok)
            snprintf(out, cap, "%s", n);
        json_decref(v);
        if (ok)
            return true;
        sleep_ms(100);
    }
    return false;
}

static bool wait_node(struct fixture *f, const char *node, const char *role, bool streaming, int ms)
{
    char key[128];
    snprintf(key, sizeof key, "/clusters/test/pg/nodes/%s", node);
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        json_t *v = dcs_value(f, key);
        const char *r = json_string_value(json_object_get(v, "role"));
        bool ok = r != NULL && strcmp(r, role) == 0 &&
                  json_is_true(json_object_get(v, "healthy")) &&
                  (!streaming || json_is_true(json_object_get(v, "streaming")));
        json_decref(v);
        if (ok)
            return true;
        sleep_ms(100);
    }
    return false;
}

static void dump_log(const struct node *n)
{
    char line[1024];
    FILE *lf = fopen(n->log, "r");
    if (lf == NULL)
        return;
    fprintf(stderr, "--- %s agent log ---\n", n->name);
    while (fgets(line, sizeof line, lf) != NULL)
        fputs(line, stderr);
    fclose(lf);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A committed write, cut off after a second so a stuck server reads as
 * not writable rather than stalling the sampler. */
static bool writable(const struct node *n, int port)
{
    return sql(n, port, "SET statement_timeout = 1000; INSERT INTO t VALUES (3)", NULL, 0);
}

static pid_t postmaster_pid(const struct node *n)
{
    char path[300], line[32] = "";
    snprintf(path, sizeof path, "%s/postmaster.pid", n->data);
    FILE *pf = fopen(path, "r");
    if (pf == NULL)
        return -1;
    if (fgets(line, sizeof line, pf) == NULL)
        line[0] = '\0';
    fclose(pf);
    long v = strtol(line, NULL, 10);
    return v > 1 ? (pid_t)v : -1;
}

/* The owner of n's data directory (the user the servers run as). */
static uid_t postmaster_uid(const struct node *n)
{
    struct stat sb;
    return stat(n->data, &sb) == 0 ? sb.st_uid : (uid_t)-1;
}

/* --- the scenario --- */

/* The scenario thread may not use cmocka's assertions (they jump back to
 * the main thread's frame): it records the first failure and returns. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(f->failure, sizeof f->failure, __VA_ARGS__);                                      \
        return;                                                                                    \
    } while (0)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                            \
    } while (0)

static void scenario(struct fixture *f)
{
    char leader[64] = "", after[64] = "";
    struct rv_error err = {0};
    snprintf(f->obs.url, sizeof f->obs.url, "http://127.0.0.1:%u", (unsigned)f->r.port);
    if (dcs_client_register(&f->obs, f->tok[2], "test/pg", "observer", "127.0.0.1:1", &err) != 0)
        FAIL("observer register: %.400s", err.msg);

    int64_t t0 = now_ms();
    CHECK(node_spawn(&f->a) && node_spawn(&f->b));
    if (!wait_leader(f, NULL, leader, sizeof leader, BOOT_WAIT_MS))
        FAIL("no leader within %d ms", BOOT_WAIT_MS);
    int64_t t_leader = now_ms();
    struct node *p = strcmp(leader, "node-a") == 0 ? &f->a : &f->b;
    struct node *r = p == &f->a ? &f->b : &f->a;
    CHECK(strcmp(leader, "node-a") == 0 || strcmp(leader, "node-b") == 0);
    if (!wait_node(f, p->name, "primary", false, BOOT_WAIT_MS) ||
        !wait_node(f, r->name, "replica", true, BOOT_WAIT_MS))
        FAIL("%s should be a healthy primary and %s a streaming replica", p->name, r->name);
    int64_t t_replica = now_ms();
    fprintf(stderr, "leader %s after %lld ms, replica %s streaming after %lld ms\n", p->name,
            (long long)(t_leader - t0), r->name, (long long)(t_replica - t0));
    /* The agent token is saved 0600. */
    char tp[300];
    struct stat sb;
    snprintf(tp, sizeof tp, "%s/agent-token", p->state);
    CHECK(stat(tp, &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0600);

    /* Replication. */
    char v[64] = "";
    CHECK(sql(p, f->port, "SELECT pg_is_in_recovery()", v, sizeof v));
    CHECK(strcmp(v, "f") == 0);
    CHECK(sql(r, f->port, "SELECT pg_is_in_recovery()", v, sizeof v));
    CHECK(strcmp(v, "t") == 0);
    CHECK(sql(p, f->port, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)", NULL, 0));
    if (!wait_value(r, f->port, "SELECT max(x) FROM t", "42", REPL_WAIT_MS))
        FAIL("the row did not reach the replica %s", r->name);
    /* A replica refuses writes. */
    CHECK(!sql(r, f->port, "INSERT INTO t VALUES (1)", NULL, 0));

    /* Fencing: the reconciler hangs for two TTLs. The primary cannot renew
     * its session and must stop taking writes before its key could expire
     * (one TTL after its last keepalive was heard, so after t_hang + TTL). */
    f->r.hang_ms = 2 * TTL_MS;
    int64_t t_hang = now_ms();
    uv_async_send(&f->r.hang);
    int64_t last_ok = -1;
    int writes = 0;
    while (now_ms() < t_hang + 2 * TTL_MS) {
        if (sql(p, f->port, "INSERT INTO t VALUES (2)", NULL, 0)) {
            last_ok = now_ms() - t_hang;
            writes++;
        }
        sleep_ms(20);
    }
    fprintf(stderr,
            "fencing: last write on the old primary %lld ms into the hang (%d writes, "
            "ttl %d)\n",
            (long long)last_ok, writes, TTL_MS);
    CHECK(last_ok < TTL_MS);
    /* After the hang one node leads and the other follows it. */
    if (!wait_leader(f, NULL, leader, sizeof leader, FAILOVER_WAIT_MS))
        FAIL("no leader after the reconciler came back");
    p = strcmp(leader, "node-a") == 0 ? &f->a : &f->b;
    r = p == &f->a ? &f->b : &f->a;
    if (!wait_node(f, p->name, "primary", false, BOOT_WAIT_MS) ||
        !wait_node(f, r->name, "replica", true, BOOT_WAIT_MS))
        FAIL("after the hang %s should be a healthy primary and %s a streaming replica", p->name,
             r->name);
    fprintf(stderr, "after the hang: %s leads, %s streams, %lld ms after the hang began\n", p->name,
            r->name, (long long)(now_ms() - t_hang));
    CHECK(sql(p, f->port, "INSERT INTO t VALUES (44)", NULL, 0));
    if (!wait_value(r, f->port, "SELECT max(x) FROM t", "44", REPL_WAIT_MS))
        FAIL("the row did not reach the replica %s after the hang", r->name);

    /* A frozen agent: only the primary's agent stops (SIGSTOP), its server
     * keeps running. The agent's watchdog must stop the server before the
     * replica can take the key: sampled every ~100 ms until the new primary
     * takes writes and for one TTL after, never are both writable. */
    pid_t pm = postmaster_pid(p);
    CHECK(pm > 0);
    int64_t t_freeze = now_ms();
    CHECK(kill(p->pid, SIGSTOP) == 0);
    int64_t old_last = -1, new_first = -1, both_at = -1;
    int samples = 0;
    while (now_ms() < t_freeze + FAILOVER_WAIT_MS) {
        bool pw = writable(p, f->port);
        bool rw = writable(r, f->port);
        int64_t t = now_ms() - t_freeze;
        samples++;
        if (pw)
            old_last = t;
        if (rw && new_first < 0)
            new_first = t;
        if (pw && rw && both_at < 0)
            both_at = t;
        if (new_first >= 0 && t > new_first + TTL_MS)
            break;
        sleep_ms(100);
    }
    fprintf(stderr,
            "frozen agent: old primary's last write %lld ms, new primary's first %lld ms "
            "after the freeze (%d samples, ttl %d)\n",
            (long long)old_last, (long long)new_first, samples, TTL_MS);
    if (both_at >= 0)
        FAIL("two writable primaries %lld ms after %s's agent froze", (long long)both_at, p->name);
    if (new_first < 0)
        FAIL("%s did not take writes within %d ms of %s's agent freezing", r->name,
             FAILOVER_WAIT_MS, p->name);
    CHECK(old_last < TTL_MS);
    CHECK(!sql(p, f->port, "SELECT 1", NULL, 0));
    /* The watchdog left the server restartable only as a standby. */
    char sig[300];
    snprintf(sig, sizeof sig, "%s/standby.signal", p->data);
    CHECK(stat(sig, &sb) == 0);
    CHECK(sb.st_uid == postmaster_uid(p));
    /* Thawed, the agent fences itself (too late to matter) and rejoins the
     * new primary; it never becomes a second writable primary. */
    CHECK(kill(p->pid, SIGCONT) == 0);
    int64_t t_thaw = now_ms();
    bool rejoined = false;
    while (now_ms() < t_thaw + BOOT_WAIT_MS) {
        if (writable(p, f->port))
            FAIL("%s took writes after its agent thawed", p->name);
        if (wait_node(f, p->name, "replica", true, 100)) {
            rejoined = true;
            break;
        }
    }
    if (!rejoined)
        FAIL("%s did not rejoin as a streaming replica after its agent thawed", p->name);
    CHECK(wait_leader(f, NULL, leader, sizeof leader, REPL_WAIT_MS));
    CHECK(strcmp(leader, r->name) == 0);
    fprintf(stderr, "thaw: %s rejoined %lld ms after its agent thawed\n", p->name,
            (long long)(now_ms() - t_thaw));
    struct node *swap = p;
    p = r;
    r = swap;

    /* Failover: the primary's server dies and its agent freezes. */
    pm = postmaster_pid(p);
    CHECK(pm > 0);
    int64_t t_kill = now_ms();
    CHECK(kill(p->pid, SIGSTOP) == 0);
    CHECK(kill(pm, SIGKILL) == 0);
    if (!wait_leader(f, p->name, after, sizeof after, FAILOVER_WAIT_MS))
        FAIL("no new leader within %d ms of the primary's death", FAILOVER_WAIT_MS);
    CHECK(strcmp(after, r->name) == 0);
    int64_t t_key = now_ms();
    if (!wait_value(r, f->port, "SELECT pg_is_in_recovery()", "f", REPL_WAIT_MS))
        FAIL("%s was not promoted", r->name);
    CHECK(sql(r, f->port, "INSERT INTO t VALUES (45)", NULL, 0));
    int64_t t_write = now_ms();
    fprintf(stderr, "failover: new leader key after %lld ms, writable after %lld ms (ttl %d)\n",
            (long long)(t_key - t_kill), (long long)(t_write - t_kill), TTL_MS);
    CHECK(t_key - t_kill >= TTL_MS / 2);
    CHECK(wait_node(f, r->name, "primary", false, REPL_WAIT_MS));
    /* The old primary takes no writes after its key expired. */
    for (int i = 0; i < 10; i++) {
        CHECK(!sql(p, f->port, "INSERT INTO t VALUES (0)", NULL, 0));
        sleep_ms(100);
    }
    /* The frozen agent is done. Started again (saved agent token, node
     * marked as a former primary, a crashed data directory on the old
     * timeline) it rejoins the new primary by rewind. */
    kill(p->pid, SIGKILL);
    node_reap(p, 5000);
    CHECK(drop_registration(f, p));
    int64_t t_rejoin = now_ms();
    CHECK(node_spawn(p));
    if (!wait_node(f, p->name, "replica", true, BOOT_WAIT_MS))
        FAIL("the old primary %s did not rejoin as a streaming replica", p->name);
    if (!wait_value(p, f->port, "SELECT max(x) FROM t", "45", REPL_WAIT_MS))
        FAIL("the rejoined %s does not see the new primary's write", p->name);
    fprintf(stderr, "rejoin: %s streams from %s %lld ms after its agent restarted\n", p->name,
            r->name, (long long)(now_ms() - t_rejoin));

    /* Switchover by a graceful stop: the primary shuts its server down,
     * then revokes its session; the replica takes over. */
    int64_t t_stop = now_ms();
    kill(r->pid, SIGTERM);
    int st = node_reap(r, 20000);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(!sql(r, f->port, "SELECT 1", NULL, 0));
    if (!wait_leader(f, r->name, after, sizeof after, FAILOVER_WAIT_MS))
        FAIL("no new leader after %s stopped", r->name);
    CHECK(strcmp(after, p->name) == 0);
    if (!wait_value(p, f->port, "SELECT pg_is_in_recovery()", "f", REPL_WAIT_MS))
        FAIL("%s was not promoted after %s stopped", p->name, r->name);
    CHECK(sql(p, f->port, "INSERT INTO t VALUES (46)", NULL, 0));
    fprintf(stderr, "switchover: %s writable %lld ms after %s was told to stop\n", p->name,
            (long long)(now_ms() - t_stop), r->name);

    /* The last agent stops; its stop releases the leader key. */
    kill(p->pid, SIGTERM);
    st = node_reap(p, 20000);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    json_t *gone = dcs_value(f, "/clusters/test/pg/leader");
    bool released = gone == NULL;
    json_decref(gone);
    CHECK(released);
    CHECK(!sql(p, f->port, "SELECT 1", NULL, 0));
}

static void *scenario_main(void *arg)
{
    struct fixture *f = arg;
    f->run(f);
    uv_async_send(&f->r.stop);
    return NULL;
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!have_pg() || getenv("REEVE_AGENT_BIN") == NULL)
        return 0;
    snprintf(f.base, sizeof f.base, "/tmp/reeve-agent-test-XXXXXX");
    if (mkdtemp(f.base) == NULL)
        return -1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(f.base, pw->pw_uid, pw->pw_gid) != 0)
            return -1;
    }
    chmod(f.base, 0711);
    f.port = 20000 + (int)(getpid() % 20000);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct node *nodes[] = {&f->a, &f->b, &f->c};
    bool failed = false;
    for (size_t i = 0; i < 3; i++) {
        struct node *n = nodes[i];
        if (n->name == NULL)
            continue;
        if (n->pid > 0) {
            failed = true;
            kill(n->pid, SIGKILL);
            node_reap(n, 5000);
        }
        if (n->engine_ok) {
            struct rv_error err = {0};
            if (pg_engine_stop(&n->e, PG_STOP_IMMEDIATE, &err) != 0)
                fprintf(stderr, "teardown %s: %s\n", n->name, err.msg);
            pg_engine_release(&n->e);
        }
        if (failed || getenv("REEVE_TEST_VERBOSE") != NULL)
            dump_log(n);
    }
    if (f->r.started) {
        uv_async_send(&f->r.stop);
        recon_run_and_free(&f->r);
    }
    dcs_client_release(&f->obs);
    if (f->base[0] && getenv("REEVE_KEEP_TEST_DIRS") == NULL)
        nftw(f->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

static void test_bootstrap_and_failover(void **state)
{
    struct fixture *f = *state;
    if (!have_pg() || getenv("REEVE_AGENT_BIN") == NULL) {
        fprintf(stderr, "skipped: needs PostgreSQL 15 in " PG_BIN " and REEVE_AGENT_BIN\n");
        skip();
    }
    static const char *const nodes[] = {"node-a", "node-b", "observer"};
    struct rv_error err = {0};
    struct rv_error rerr = {0};
    if (recon_start(&f->r, f->tok, "test", "pg", nodes, 3, &rerr) != 0)
        fail_msg("reconciler: %s", rerr.msg);
    assert_int_equal(dcs_client_init(&f->obs, "http://127.0.0.1:1", 5000, &err), 0);
    node_prepare(f, &f->a, "node-a", "127.0.20.1", f->tok[0], "");
    node_prepare(f, &f->b, "node-b", "127.0.20.2", f->tok[1], "");
    setenv("REEVE_TEST_REPL_PASSWORD", "r3pl'pass", 1);
    f->run = scenario;
    assert_int_equal(pthread_create(&f->thread, NULL, scenario_main, f), 0);
    recon_run_and_free(&f->r);
    pthread_join(f->thread, NULL);
    assert_true(f->r.closed);
    if (f->failure[0] != '\0')
        fail_msg("%s", f->failure);
}

/* --- handlers, synchronous replication, re-clone --- */

static bool file_has(const char *path, const char *needle)
{
    char buf[65536];
    FILE *in = fopen(path, "r");
    if (in == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* The env file a handler wrote for node and event. */
static void env_path(char *out, size_t cap, const struct fixture *f, const struct node *n,
                     const char *event)
{
    snprintf(out, cap, "%s/%s.%s.env", f->base, n->name, event);
}

static bool env_has(const struct fixture *f, const struct node *n, const char *event,
                    const char *line)
{
    char path[300], want[512];
    env_path(path, sizeof path, f, n, event);
    snprintf(want, sizeof want, "%s\n", line);
    return file_has(path, want);
}

/* Handlers run after the step they belong to: give them a moment. */
static bool wait_env(const struct fixture *f, const struct node *n, const char *event,
                     const char *line, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (!env_has(f, n, event, line)) {
        if (now_ms() > deadline)
            return false;
        sleep_ms(50);
    }
    return true;
}

static bool log_has(const struct node *n, const char *needle)
{
    return file_has(n->log, needle);
}

/* Wait until the sync key names exactly one member, that member is a
 * streaming replica, and p's synchronous_standby_names names it. */
static bool wait_sync(struct fixture *f, const struct node *p, char *member, size_t cap, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        json_t *v = dcs_value(f, "/clusters/test/pg/sync");
        json_t *m = json_object_get(v, "members");
        const char *lead = json_string_value(json_object_get(v, "leader"));
        bool one = json_array_size(m) == 1 && lead != NULL && strcmp(lead, p->name) == 0;
        if (one)
            snprintf(member, cap, "%s", json_string_value(json_array_get(m, 0)));
        json_decref(v);
        char got[256] = "", want[128];
        if (one) {
            snprintf(want, sizeof want, "FIRST 1 (\"%s\")", member);
            if (sql(p, f->port, "SHOW synchronous_standby_names", got, sizeof got) &&
                strcmp(got, want) == 0)
                return true;
        }
        sleep_ms(100);
    }
    return false;
}

static struct node *by_name(struct fixture *f, const char *name)
{
    struct node *all[] = {&f->a, &f->b, &f->c};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

static int count_failed_dirs(const struct fixture *f, const struct node *n)
{
    char path[300];
    int found = 0;
    DIR *d = opendir(f->base);
    struct dirent *de;
    snprintf(path, sizeof path, "%s-data.failed-", n->name);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, path, strlen(path)) == 0)
            found++;
    closedir(d);
    return found;
}

static void scenario_sync(struct fixture *f)
{
    char leader[64] = "", member[64] = "", v[256] = "", line[300], path[300];
    struct rv_error err = {0};
    struct node *all[] = {&f->a, &f->b, &f->c};
    snprintf(f->obs.url, sizeof f->obs.url, "http://127.0.0.1:%u", (unsigned)f->r.port);
    if (dcs_client_register(&f->obs, f->tok[3], "test/pg", "observer", "127.0.0.1:1", &err) != 0)
        FAIL("observer register: %.400s", err.msg);

    /* preStart fails until the "volume" is there: nothing is initialized
     * or cloned, and the handler's output is in the log. */
    int64_t t0 = now_ms();
    for (size_t i = 0; i < 3; i++)
        CHECK(node_spawn(all[i]));
    sleep_ms(1500);
    for (size_t i = 0; i < 3; i++) {
        if (!log_has(all[i], "preStart handler failed (exit 3): the volume is not mounted yet"))
            FAIL("%s: no preStart failure in the log", all[i]->name);
        CHECK(access(all[i]->data, F_OK) != 0);
        CHECK(env_has(f, all[i], "preStart", "REEVE_EVENT=preStart"));
    }
    json_t *none = dcs_value(f, "/clusters/test/pg/leader");
    CHECK(none == NULL);
    json_decref(none);
    snprintf(path, sizeof path, "%s/go", f->base);
    write_text(path, "");
    if (!wait_leader(f, NULL, leader, sizeof leader, BOOT_WAIT_MS))
        FAIL("no leader within %d ms once preStart passes", BOOT_WAIT_MS);
    struct node *p = by_name(f, leader);
    CHECK(p != NULL);
    for (size_t i = 0; i < 3; i++)
        if (all[i] != p && !wait_node(f, all[i]->name, "replica", true, BOOT_WAIT_MS))
            FAIL("%s should be a streaming replica of %s", all[i]->name, p->name);
    fprintf(stderr, "sync: %s leads, two replicas stream %lld ms after start\n", p->name,
            (long long)(now_ms() - t0));

    /* The handlers' environment. */
    struct node *any = &f->a;
    CHECK(env_has(f, any, "preStart", "REEVE_CLUSTER=test/pg"));
    CHECK(env_has(f, any, "preStart", "REEVE_NODE=node-a"));
    CHECK(env_has(f, any, "preStart", "REEVE_ROLE="));
    snprintf(line, sizeof line, "REEVE_DATA_DIR=%s", any->data);
    CHECK(env_has(f, any, "preStart", line));
    snprintf(line, sizeof line, "REEVE_PORT=%d", f->port);
    CHECK(env_has(f, any, "preStart", line));
    CHECK(env_has(f, any, "preStart", "REEVE_LISTEN_ADDRESS=127.0.20.1"));
    env_path(path, sizeof path, f, any, "preStart");
    CHECK(!file_has(path, "REEVE_TEST_REPL_PASSWORD"));
    CHECK(wait_env(f, p, "onChange", "REEVE_NEW_ROLE=primary", REPL_WAIT_MS));
    CHECK(env_has(f, p, "onChange", "REEVE_EVENT=onChange"));
    CHECK(env_has(f, p, "onChange", "REEVE_OLD_ROLE="));
    CHECK(env_has(f, p, "onChange", "REEVE_NEW_ROLE=primary"));
    snprintf(line, sizeof line, "REEVE_PRIMARY=%s:%d", p->addr, f->port);
    CHECK(env_has(f, p, "onChange", line));
    for (size_t i = 0; i < 3; i++)
        if (all[i] != p) {
            CHECK(wait_env(f, all[i], "onChange", "REEVE_NEW_ROLE=replica", REPL_WAIT_MS));
            CHECK(env_has(f, all[i], "onChange", line));
        }

    /* One synchronous standby, published before it is live. */
    if (!wait_sync(f, p, member, sizeof member, REPL_WAIT_MS))
        FAIL("%s did not get one published, live synchronous standby", p->name);
    struct node *s = by_name(f, member);
    CHECK(s != NULL && s != p);
    struct node *async = NULL;
    for (size_t i = 0; i < 3; i++)
        if (all[i] != p && all[i] != s)
            async = all[i];
    fprintf(stderr, "sync: %s is the synchronous standby, %s is asynchronous\n", s->name,
            async->name);
    /* A failing health command makes a node unhealthy, a passing one
     * healthy again. */
    char sick[300], key[128];
    snprintf(sick, sizeof sick, "%s/%s.sick", f->base, async->name);
    snprintf(key, sizeof key, "/clusters/test/pg/nodes/%s", async->name);
    write_text(sick, "");
    bool unhealthy = false;
    for (int64_t end = now_ms() + REPL_WAIT_MS; !unhealthy && now_ms() < end; sleep_ms(100)) {
        json_t *nv = dcs_value(f, key);
        unhealthy = json_is_false(json_object_get(nv, "healthy"));
        json_decref(nv);
    }
    CHECK(unhealthy);
    CHECK(log_has(async, "the health handler failed: reporting this node unhealthy"));
    CHECK(env_has(f, async, "health", "REEVE_ROLE=replica"));
    CHECK(unlink(sick) == 0);
    CHECK(wait_node(f, async->name, "replica", true, REPL_WAIT_MS));
    /* An acknowledged commit, then the primary dies at once; the
     * synchronous standby's agent is frozen too: the asynchronous replica
     * must not take over. */
    CHECK(sql(p, f->port, "CREATE TABLE t (x int); INSERT INTO t VALUES (77)", NULL, 0));
    pid_t pm = postmaster_pid(p);
    CHECK(pm > 0);
    int64_t t_kill = now_ms();
    CHECK(kill(p->pid, SIGSTOP) == 0);
    CHECK(kill(pm, SIGKILL) == 0);
    CHECK(kill(s->pid, SIGSTOP) == 0);
    while (now_ms() < t_kill + 2 * TTL_MS) {
        json_t *lv = dcs_value(f, "/clusters/test/pg/leader");
        const char *n = json_string_value(json_object_get(lv, "node"));
        bool bad = n != NULL && strcmp(n, async->name) == 0;
        json_decref(lv);
        if (bad)
            FAIL("the asynchronous replica %s took the leader key", async->name);
        sleep_ms(100);
    }
    CHECK(log_has(async, "not one of the 1 synchronous standby(s)"));
    CHECK(sql(async, f->port, "SELECT pg_is_in_recovery()", v, sizeof v));
    CHECK(strcmp(v, "t") == 0);
    /* Thawed, the synchronous standby takes over with the row. */
    CHECK(kill(s->pid, SIGCONT) == 0);
    if (!wait_leader(f, p->name, leader, sizeof leader, FAILOVER_WAIT_MS))
        FAIL("no new leader after the synchronous standby thawed");
    CHECK(strcmp(leader, s->name) == 0);
    if (!wait_value(s, f->port, "SELECT pg_is_in_recovery()", "f", REPL_WAIT_MS))
        FAIL("%s was not promoted", s->name);
    CHECK(sql(s, f->port, "SELECT max(x) FROM t", v, sizeof v));
    CHECK(strcmp(v, "77") == 0);
    CHECK(wait_env(f, s, "onChange", "REEVE_NEW_ROLE=primary", REPL_WAIT_MS));
    CHECK(env_has(f, s, "onChange", "REEVE_OLD_ROLE=replica"));
    if (!wait_node(f, async->name, "replica", true, BOOT_WAIT_MS))
        FAIL("%s did not follow the new primary %s", async->name, s->name);
    CHECK(sql(s, f->port, "INSERT INTO t VALUES (78)", NULL, 0));
    fprintf(stderr, "sync: %s promoted with the acknowledged row, %lld ms after the kill\n",
            s->name, (long long)(now_ms() - t_kill));

    /* The old primary's data directory is crashed and holds
     * standby.signal (what a watchdog's SIGQUIT leaves): rewind fails, so
     * it is moved aside and the node is cloned afresh. */
    kill(p->pid, SIGKILL);
    node_reap(p, 5000);
    snprintf(path, sizeof path, "%s/standby.signal", p->data);
    write_text(path, "");
    CHECK(chown(path, postmaster_uid(p), (gid_t)-1) == 0 || geteuid() != 0);
    int64_t t_rejoin = now_ms();
    CHECK(node_spawn(p));
    if (!wait_node(f, p->name, "replica", true, BOOT_WAIT_MS))
        FAIL("the old primary %s did not rejoin as a streaming replica", p->name);
    if (!wait_value(p, f->port, "SELECT max(x) FROM t", "78", REPL_WAIT_MS))
        FAIL("the re-cloned %s does not see the new primary's write", p->name);
    CHECK(log_has(p, "rewind cannot help"));
    CHECK(log_has(p, "moved the old data directory to"));
    CHECK(count_failed_dirs(f, p) == 1);
    fprintf(stderr, "re-clone: %s streams again %lld ms after its agent restarted\n", p->name,
            (long long)(now_ms() - t_rejoin));

    /* preStop and postStop on a graceful stop. */
    kill(async->pid, SIGTERM);
    int st = node_reap(async, 20000);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(env_has(f, async, "preStop", "REEVE_ROLE=replica"));
    CHECK(env_has(f, async, "postStop", "REEVE_EVENT=postStop"));
    for (size_t i = 0; i < 3; i++) {
        if (all[i]->pid <= 0)
            continue;
        kill(all[i]->pid, SIGTERM);
        st = node_reap(all[i], 20000);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void test_sync_handlers_reclone(void **state)
{
    struct fixture *f = *state;
    if (!have_pg() || getenv("REEVE_AGENT_BIN") == NULL) {
        fprintf(stderr, "skipped: needs PostgreSQL 15 in " PG_BIN " and REEVE_AGENT_BIN\n");
        skip();
    }
    static const char *const nodes[] = {"node-a", "node-b", "node-c", "observer"};
    static const char hook[] =
        "#!/bin/sh\n"
        "env | grep '^REEVE_' | sort > \"$1/$REEVE_NODE.$REEVE_EVENT.env\"\n"
        "if [ \"$REEVE_EVENT\" = preStart ] && [ ! -f \"$1/go\" ]; then\n"
        "  echo 'the volume is not mounted yet'; exit 3\n"
        "fi\n"
        "if [ \"$REEVE_EVENT\" = health ] && [ -f \"$1/$REEVE_NODE.sick\" ]; then\n"
        "  echo 'probe failed'; exit 1\n"
        "fi\n";
    char hookpath[128], extra[4096], cmd[512];
    struct rv_error err = {0};
    struct rv_error rerr = {0};
    if (recon_start(&f->r, f->tok, "test", "pg", nodes, 4, &rerr) != 0)
        fail_msg("reconciler: %s", rerr.msg);
    assert_int_equal(dcs_client_init(&f->obs, "http://127.0.0.1:1", 5000, &err), 0);
    snprintf(hookpath, sizeof hookpath, "%s/hook.sh", f->base);
    write_text(hookpath, hook);
    snprintf(cmd, sizeof cmd, "{command: [/bin/sh, %s, %s], timeout_ms: 5000}", hookpath, f->base);
    snprintf(extra, sizeof extra,
             "synchronous: 1\n"
             "handlers:\n"
             "  preStart: %s\n"
             "  onChange: %s\n"
             "  preStop: %s\n"
             "  postStop: %s\n"
             "  health: %s\n",
             cmd, cmd, cmd, cmd, cmd);
    node_prepare(f, &f->a, "node-a", "127.0.20.1", f->tok[0], extra);
    node_prepare(f, &f->b, "node-b", "127.0.20.2", f->tok[1], extra);
    node_prepare(f, &f->c, "node-c", "127.0.20.3", f->tok[2], extra);
    setenv("REEVE_TEST_REPL_PASSWORD", "r3pl'pass", 1);
    f->run = scenario_sync;
    assert_int_equal(pthread_create(&f->thread, NULL, scenario_main, f), 0);
    recon_run_and_free(&f->r);
    pthread_join(f->thread, NULL);
    assert_true(f->r.closed);
    if (f->failure[0] != '\0')
        fail_msg("%s", f->failure);
}

/* --- least lag first --- */

/* Three asynchronous nodes; the replica with the smaller name stops
 * receiving WAL (its walreceiver is stopped), the primary writes more and
 * dies: the other replica, which holds more WAL, must take over. */
static void scenario_lag(struct fixture *f)
{
    char leader[64] = "", v[64] = "";
    struct rv_error err = {0};
    struct node *all[] = {&f->a, &f->b, &f->c};
    snprintf(f->obs.url, sizeof f->obs.url, "http://127.0.0.1:%u", (unsigned)f->r.port);
    if (dcs_client_register(&f->obs, f->tok[3], "test/pg", "observer", "127.0.0.1:1", &err) != 0)
        FAIL("observer register: %.400s", err.msg);
    for (size_t i = 0; i < 3; i++)
        CHECK(node_spawn(all[i]));
    if (!wait_leader(f, NULL, leader, sizeof leader, BOOT_WAIT_MS))
        FAIL("no leader within %d ms", BOOT_WAIT_MS);
    struct node *p = by_name(f, leader), *slow = NULL, *fast = NULL;
    CHECK(p != NULL);
    for (size_t i = 0; i < 3; i++) {
        if (all[i] == p)
            continue;
        if (!wait_node(f, all[i]->name, "replica", true, BOOT_WAIT_MS))
            FAIL("%s should be a streaming replica of %s", all[i]->name, p->name);
        if (slow == NULL)
            slow = all[i];
        else
            fast = all[i];
    }
    CHECK(sql(p, f->port, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)", NULL, 0));
    CHECK(wait_value(slow, f->port, "SELECT count(*) FROM t", "1", REPL_WAIT_MS));
    CHECK(sql(slow, f->port, "SELECT pid FROM pg_stat_wal_receiver", v, sizeof v));
    pid_t wr = (pid_t)strtol(v, NULL, 10);
    CHECK(wr > 1 && kill(wr, SIGSTOP) == 0);
    CHECK(sql(p, f->port, "INSERT INTO t SELECT generate_series(2, 1000)", NULL, 0));
    bool ok = wait_value(fast, f->port, "SELECT count(*) FROM t", "1000", REPL_WAIT_MS);
    pid_t pm = postmaster_pid(p);
    if (ok && pm > 0) {
        sleep_ms(2 * 300); /* a tick or two: every node has published */
        CHECK(kill(p->pid, SIGSTOP) == 0);
        CHECK(kill(pm, SIGKILL) == 0);
        ok = wait_leader(f, p->name, leader, sizeof leader, FAILOVER_WAIT_MS);
    }
    kill(wr, SIGCONT);
    CHECK(ok);
    if (strcmp(leader, fast->name) != 0)
        FAIL("%s (behind) took the key instead of %s", leader, fast->name);
    CHECK(wait_value(fast, f->port, "SELECT pg_is_in_recovery()", "f", REPL_WAIT_MS));
    CHECK(log_has(slow, "replica(s) have more WAL: racing in"));
    fprintf(stderr, "least lag: %s (ahead) took over, %s (behind) waited\n", fast->name,
            slow->name);
    kill(p->pid, SIGKILL);
    node_reap(p, 5000);
    for (size_t i = 0; i < 3; i++) {
        if (all[i]->pid <= 0)
            continue;
        kill(all[i]->pid, SIGTERM);
        int st = node_reap(all[i], 20000);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void test_least_lag(void **state)
{
    struct fixture *f = *state;
    if (!have_pg() || getenv("REEVE_AGENT_BIN") == NULL) {
        fprintf(stderr, "skipped: needs PostgreSQL 15 in " PG_BIN " and REEVE_AGENT_BIN\n");
        skip();
    }
    static const char *const nodes[] = {"node-a", "node-b", "node-c", "observer"};
    struct rv_error err = {0};
    struct rv_error rerr = {0};
    if (recon_start(&f->r, f->tok, "test", "pg", nodes, 4, &rerr) != 0)
        fail_msg("reconciler: %s", rerr.msg);
    assert_int_equal(dcs_client_init(&f->obs, "http://127.0.0.1:1", 5000, &err), 0);
    node_prepare(f, &f->a, "node-a", "127.0.20.1", f->tok[0], "");
    node_prepare(f, &f->b, "node-b", "127.0.20.2", f->tok[1], "");
    node_prepare(f, &f->c, "node-c", "127.0.20.3", f->tok[2], "");
    setenv("REEVE_TEST_REPL_PASSWORD", "r3pl'pass", 1);
    f->run = scenario_lag;
    assert_int_equal(pthread_create(&f->thread, NULL, scenario_main, f), 0);
    recon_run_and_free(&f->r);
    pthread_join(f->thread, NULL);
    assert_true(f->r.closed);
    if (f->failure[0] != '\0')
        fail_msg("%s", f->failure);
}

/* --- configuration --- */

static char *config_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/reeve-agent-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* The printed diagnostics, one per line, as the user sees them. */
static void diags_text(char *out, size_t cap, const struct diag_list *l)
{
    FILE *m = fmemopen(out, cap, "w");
    assert_non_null(m);
    diag_list_print(m, l);
    fclose(m);
}

static void test_config(void **state)
{
    (void)state;
    struct agent_config c;
    struct diag_list d;
    char text[4096];
    setenv("REEVE_TEST_REG", "0123456789abcdef\n", 1);
    setenv("REEVE_TEST_PW", "secret", 1);
    char *path = config_file("node: billing-0\n"
                             "cluster: payments/billing\n"
                             "reconciler: http://127.0.0.1:7480/\n"
                             "registration_token: env:REEVE_TEST_REG\n"
                             "state_dir: /var/lib/reeve-agent\n"
                             "engine:\n"
                             "  type: postgresql\n"
                             "  bin_dir: /usr/lib/postgresql/15/bin\n"
                             "  data_dir: /var/lib/pg\n"
                             "  socket_dir: /run/reeve\n"
                             "  listen_address: 10.0.0.5\n"
                             "  replication_password: env:REEVE_TEST_PW\n"
                             "  parameters:\n"
                             "    work_mem: 4MB\n"
                             "    hot_standby_feedback: true\n"
                             "    max_connections: 200\n");
    diag_list_init(&d);
    assert_int_equal(agent_config_load(&c, path, &d), 0);
    assert_string_equal(c.node, "billing-0");
    assert_string_equal(c.namespace_, "payments");
    assert_string_equal(c.cluster, "billing");
    assert_string_equal(c.reconciler_url, "http://127.0.0.1:7480");
    assert_string_equal(c.registration_token, "0123456789abcdef");
    assert_string_equal(c.pg.replication_password, "secret");
    assert_int_equal(c.ttl_ms, RV_AGENT_TTL_DEFAULT_MS);
    assert_int_equal(c.tick_ms, RV_AGENT_TICK_DEFAULT_MS);
    assert_int_equal(c.pg.port, 5432);
    assert_string_equal(c.pg.superuser, "postgres");
    assert_string_equal(c.pg.replication_user, "replicator");
    assert_int_equal(c.pg.n_params, 3);
    assert_string_equal(c.pg.params[1].value, "on");
    assert_string_equal(c.pg.params[2].value, "200");
    agent_config_release(&c);
    diag_list_release(&d);
    unlink(path);

    path = config_file("node: Billing\n"
                       "cluster: payments\n"
                       "reconciler: ftp://x\n"
                       "registration_token: env:REEVE_TEST_UNSET_VAR\n"
                       "state_dir: relative\n"
                       "ttl_ms: 500\n"
                       "colour: blue\n"
                       "engine:\n"
                       "  type: mysql\n"
                       "  port: 99999\n"
                       "  replication_password: plain\n");
    diag_list_init(&d);
    assert_int_not_equal(agent_config_load(&c, path, &d), 0);
    diag_list_sort(&d);
    diags_text(text, sizeof text, &d);
    static const char *const want[] = {
        ":1:7: error: node: must be lowercase",
        ":2:10: error: cluster: must be '<namespace>/<name>'",
        ":3:13: error: reconciler: must be an http:// or https:// URL",
        ":4:21: error: registration_token: environment variable 'REEVE_TEST_UNSET_VAR' is not set",
        ":5:12: error: state_dir: must be an absolute path",
        ":6:9: error: ttl_ms: must be between 2000 and 120000 (got 500)",
        ":7:1: error: colour: unknown field",
        ":9:9: error: engine.type: must be 'postgresql'",
        ":9:3: error: engine.bin_dir: required field is missing",
        ":10:9: error: engine.port: must be between 1 and 65535 (got 99999)",
        ":11:25: error: engine.replication_password: a secret reference is",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(text, want[i]) == NULL)
            fail_msg("missing diagnostic '%s' in:\n%s", want[i], text);
    assert_null(strstr(text, "plain"));
    diag_list_release(&d);
    unlink(path);

    /* Handlers and synchronous standbys. */
    static const char base[] = "node: n\n"
                               "cluster: a/b\n"
                               "reconciler: http://127.0.0.1:1\n"
                               "state_dir: /s\n"
                               "engine: {type: postgresql, bin_dir: /b, data_dir: /d,"
                               " socket_dir: /k, listen_address: 127.0.0.1,"
                               " replication_password: env:REEVE_TEST_PW}\n";
    snprintf(text, sizeof text,
             "%ssynchronous: 2\n"
             "handlers:\n"
             "  health: {command: [/usr/bin/probe, --quick], timeout_ms: 2500}\n"
             "  preStop: {command: [/bin/true]}\n",
             base);
    path = config_file(text);
    diag_list_init(&d);
    assert_int_equal(agent_config_load(&c, path, &d), 0);
    assert_int_equal(c.synchronous, 2);
    assert_int_equal(c.handlers[AGENT_EV_HEALTH].argc, 2);
    assert_string_equal(c.handlers[AGENT_EV_HEALTH].argv[1], "--quick");
    assert_null(c.handlers[AGENT_EV_HEALTH].argv[2]);
    assert_int_equal(c.handlers[AGENT_EV_HEALTH].timeout_ms, 2500);
    assert_int_equal(c.handlers[AGENT_EV_PRESTOP].timeout_ms, RV_AGENT_HANDLER_TIMEOUT_DEFAULT_MS);
    assert_null(c.handlers[AGENT_EV_PRESTART].argv);
    agent_config_release(&c);
    diag_list_release(&d);
    unlink(path);

    snprintf(text, sizeof text,
             "%ssynchronous: 99\n"
             "handlers:\n"
             "  preStart: {command: [bin/check], timeout_ms: 5}\n"
             "  health: {command: /bin/probe}\n"
             "  onChange: {timeout_ms: 1000}\n"
             "  onStart: {command: [/bin/true]}\n",
             base);
    path = config_file(text);
    diag_list_init(&d);
    assert_int_not_equal(agent_config_load(&c, path, &d), 0);
    diag_list_sort(&d);
    diags_text(text, sizeof text, &d);
    static const char *const want2[] = {
        ":6:14: error: synchronous: must be between 0 and 16 (got 99)",
        ":8:24: error: handlers.preStart.command: the program must be an absolute path",
        ":8:48: error: handlers.preStart.timeout_ms: must be between 100 and 600000 (got 5)",
        ":9:21: error: handlers.health.command: must be a list of strings",
        ":10:13: error: handlers.onChange.command: required field is missing",
        ":11:3: error: handlers.onStart: unknown field",
    };
    for (size_t i = 0; i < sizeof want2 / sizeof want2[0]; i++)
        if (strstr(text, want2[i]) == NULL)
            fail_msg("missing diagnostic '%s' in:\n%s", want2[i], text);
    diag_list_release(&d);
    unlink(path);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_bootstrap_and_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_handlers_reclone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_lag, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
