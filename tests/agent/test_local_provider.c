/* test_local_provider.c - reeve-provider-local end to end.
 *
 * reeve-provider-local (REEVE_PROVIDER_LOCAL_BIN) runs under
 * reconciler/provider.c's client with an image catalog file that offers
 * PostgreSQL 15 twice ("15" and "15-copy", the same binaries). An
 * in-process reconciler (DCS and agent API on a libuv loop on the main
 * thread, 127.0.0.1:0) issues the registration tokens; the scenario thread
 * creates two instances of one cluster through the provider and watches the
 * DCS through an observer: one node becomes the primary and the other a
 * streaming replica. Then: an idempotent create after a restart of the
 * provider (same key, same id, one directory), a name clash, an unknown version, list by labels,
 * resize, a killed agent reported failed, delete (agents and servers gone, also the server the
 * killed agent left; directories gone) and a repeated delete. A second test writes garbage and
 * malformed requests to the binary's stdin and checks the replies and that it keeps serving.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "dcs.h"
#include "dcs_client.h"
#include "httpd.h"
#include "provider.h"
#include "testutil.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define BOOT_WAIT_MS 60000
#define CALL_MS 60000

struct fixture {
    char base[64];
    char root[128];
    char images[128];
    char net[32];
    struct recon r;
    struct dcs_client obs;
    char tok[3][AGENTAPI_TOKEN_HEX_SIZE];
    struct provider *p;
    char *env[8];
    char *argv[2];
    pthread_t thread;
    char failure[1024];
};

/* --- helpers --- */

static bool have_all(void)
{
    return access(PG_BIN "/initdb", X_OK) == 0 && getenv("REEVE_AGENT_BIN") != NULL &&
           getenv("REEVE_PROVIDER_LOCAL_BIN") != NULL;
}

static json_t *dcs_value(struct fixture *f, const char *key)
{
    struct rv_error err = {0};
    json_t *kv = NULL;
    if (dcs_client_get(&kv, NULL, &f->obs, key, &err) != 0)
        return NULL;
    json_t *v = kv != NULL ? json_incref(json_object_get(kv, "value")) : NULL;
    json_decref(kv);
    return v;
}

static bool wait_node(struct fixture *f, const char *node, const char *role, bool streaming,
                      int64_t deadline)
{
    char key[128];
    snprintf(key, sizeof key, "/clusters/test/pg/nodes/%s", node);
    while (tu_now_ms() < deadline) {
        json_t *v = dcs_value(f, key);
        const char *r = json_string_value(json_object_get(v, "role"));
        bool ok = r != NULL && strcmp(r, role) == 0 &&
                  json_is_true(json_object_get(v, "healthy")) &&
                  (!streaming || json_is_true(json_object_get(v, "streaming")));
        json_decref(v);
        if (ok)
            return true;
        tu_sleep_ms(100);
    }
    return false;
}

static int count_dirs(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (d == NULL)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static pid_t read_pid(const char *path)
{
    char line[32] = "";
    FILE *pf = fopen(path, "r");
    if (pf == NULL)
        return -1;
    if (fgets(line, sizeof line, pf) == NULL)
        line[0] = '\0';
    fclose(pf);
    long v = strtol(line, NULL, 10);
    return v > 1 ? (pid_t)v : -1;
}

static bool alive(pid_t pid)
{
    char path[64], st[256] = "";
    if (pid <= 1 || kill(pid, 0) != 0)
        return false;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *sf = fopen(path, "r");
    if (sf == NULL)
        return false;
    if (fgets(st, sizeof st, sf) == NULL)
        st[0] = '\0';
    fclose(sf);
    const char *paren = strrchr(st, ')');
    return paren == NULL || paren[2] != 'Z';
}

static void dump_logs(const char *root)
{
    char path[600], line[1024];
    char dir[300];
    snprintf(dir, sizeof dir, "%s/instances", root);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/agent.log", dir, de->d_name);
        FILE *lf = fopen(path, "r");
        if (lf == NULL)
            continue;
        fprintf(stderr, "--- %s ---\n", path);
        while (fgets(line, sizeof line, lf) != NULL)
            fputs(line, stderr);
        fclose(lf);
    }
    closedir(d);
}

/* Kill whatever the provider left running under root (after a failure). */
static void kill_leftovers(const char *root)
{
    char dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/instances", root);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/agent.pid", dir, de->d_name);
        pid_t a = read_pid(path);
        if (alive(a)) {
            kill(-a, SIGKILL);
            kill(a, SIGKILL);
        }
        snprintf(path, sizeof path, "%s/%s/data/postmaster.pid", dir, de->d_name);
        pid_t pm = read_pid(path);
        if (alive(pm))
            kill(pm, SIGKILL);
    }
    closedir(d);
}

static json_t *create_params(struct fixture *f, const char *node, const char *version,
                             const char *token)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)f->r.port);
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:i, s:i, s:i},"
                     " s:{s:{s:s, s:s, s:s, s:i, s:i, s:{s:s, s:b, s:{s:s}}},"
                     " s:{s:s, s:s}}}",
                     "name", node, "labels", "reeve.io/cluster", "test/pg", "reeve.io/node", node,
                     "team", "db", "engine", "postgresql", "version", version, "region", "local",
                     "resources", "cpu", 1, "memoryMiB", 512, "storageGiB", 1, "agent", "config",
                     "node", node, "cluster", "test/pg", "reconciler", url, "ttl_ms", 3000,
                     "tick_ms", 300, "engine", "type", "postgresql", "no_sync", 1, "parameters",
                     "wal_retrieve_retry_interval", "200ms", "secrets", "registration_token", token,
                     "replication_password", "r3pl'pass");
}

/* --- the scenario --- */

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(f->failure, sizeof f->failure, __VA_ARGS__);                                      \
        goto out;                                                                                  \
    } while (0)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                            \
    } while (0)

static void scenario(struct fixture *f)
{
    struct rv_error err = {0};
    json_t *res = NULL, *params = NULL;
    char ids[2][32] = {"", ""}, dirs[2][200], path[600];
    pid_t agents[2] = {0, 0}, pms[2] = {0, 0};
    const char *names[2] = {"node-a", "node-b"};
    int64_t t0 = tu_now_ms();

    struct provider_config pc = {.name = "local", .argv = f->argv, .env = f->env};
    if (provider_start(&f->p, &pc, &err) != 0)
        FAIL("provider_start: %s", err.msg);
    const json_t *versions =
        json_object_get(json_object_get(provider_describe(f->p), "engines"), "postgresql");
    CHECK(json_array_size(versions) >= 2);
    CHECK(provider_has_capability(f->p, "resize"));
    CHECK(!provider_has_capability(f->p, "volumes"));

    /* Two instances of one cluster, from two catalog entries. */
    const char *vers[2] = {"15", "15-copy"};
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof key, "create-%s", names[i]);
        params = create_params(f, names[i], vers[i], f->tok[i]);
        if (provider_call(&res, f->p, "create_instance", params, CALL_MS, key, &err) != 0)
            FAIL("create %s: %s", names[i], err.msg);
        json_decref(params);
        params = NULL;
        json_t *inst = json_object_get(res, "instance");
        char want[40];
        snprintf(want, sizeof want, "%s.%d", f->net, i + 1);
        CHECK(strcmp(json_string_value(json_object_get(inst, "address")), want) == 0);
        CHECK(json_integer_value(json_object_get(json_object_get(inst, "ports"), "db")) == 5432);
        const char *st = json_string_value(json_object_get(inst, "state"));
        CHECK(strcmp(st, "running") == 0 || strcmp(st, "provisioning") == 0);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(inst, "id")));
        snprintf(dirs[i], sizeof dirs[i], "%s/instances/%s", f->root, ids[i]);
        json_decref(res);
        res = NULL;
        /* The agent's configuration holds references to the secrets, not
         * the secrets, and the secret files are the run-as user's alone. */
        char text[8192] = "";
        snprintf(path, sizeof path, "%s/agent.json", dirs[i]);
        FILE *cf = fopen(path, "r");
        CHECK(cf != NULL);
        size_t n = fread(text, 1, sizeof text - 1, cf);
        fclose(cf);
        text[n] = '\0';
        CHECK(strstr(text, "r3pl'pass") == NULL && strstr(text, f->tok[i]) == NULL);
        CHECK(strstr(text, "\"replication_password\": \"file:") != NULL);
        struct stat sb;
        snprintf(path, sizeof path, "%s/replication-password", dirs[i]);
        CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("postgres");
            CHECK(pw != NULL && sb.st_uid == pw->pw_uid);
        }
        snprintf(path, sizeof path, "%s/agent.pid", dirs[i]);
        agents[i] = read_pid(path);
        CHECK(alive(agents[i]));
        /* Detached: a process group of its own, so a delete can kill it all. */
        CHECK(getpgid(agents[i]) == agents[i]);
    }
    CHECK(strcmp(ids[0], ids[1]) != 0);

    /* The same key again, from a restarted provider (keys are persisted):
     * the same instance, no second directory, the agents untouched. */
    provider_stop(f->p);
    f->p = NULL;
    if (provider_start(&f->p, &pc, &err) != 0)
        FAIL("provider restart: %s", err.msg);
    CHECK(alive(agents[0]) && alive(agents[1]));
    params = create_params(f, "node-a", "15", f->tok[0]);
    if (provider_call(&res, f->p, "create_instance", params, CALL_MS, "create-node-a", &err) != 0)
        FAIL("repeated create: %s", err.msg);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(res, "instance"), "id")),
                 ids[0]) == 0);
    json_decref(res);
    res = NULL;
    snprintf(path, sizeof path, "%s/instances", f->root);
    CHECK(count_dirs(path) == 2);
    /* Another key for a name in use: a conflict. */
    CHECK(provider_call(&res, f->p, "create_instance", params, CALL_MS, "other-key", &err) ==
          RV_ECONFLICT);
    CHECK(strstr(err.msg, "node-a") != NULL);
    json_decref(params);
    /* A version the catalog lacks: invalid, saying what to install. */
    params = create_params(f, "node-c", "14", f->tok[2]);
    CHECK(provider_call(&res, f->p, "create_instance", params, CALL_MS, "c", &err) == RV_EINVAL);
    CHECK(strstr(err.msg, "postgresql 14") != NULL && strstr(err.msg, "REEVE_LOCAL_IMAGES"));
    CHECK(!err.retryable);
    json_decref(params);
    params = NULL;
    CHECK(count_dirs(path) == 2);

    /* One primary, one streaming replica. */
    snprintf(f->obs.url, sizeof f->obs.url, "http://127.0.0.1:%u", (unsigned)f->r.port);
    if (dcs_client_register(&f->obs, f->tok[2], "test/pg", "observer", "127.0.0.1:1", &err) != 0)
        FAIL("observer register: %.400s", err.msg);
    int64_t deadline = tu_now_ms() + BOOT_WAIT_MS;
    int prim = -1;
    while (prim < 0 && tu_now_ms() < deadline) {
        json_t *v = dcs_value(f, "/clusters/test/pg/leader");
        const char *n = json_string_value(json_object_get(v, "node"));
        if (n != NULL)
            prim = strcmp(n, "node-a") == 0 ? 0 : 1;
        json_decref(v);
        if (prim < 0)
            tu_sleep_ms(100);
    }
    if (prim < 0)
        FAIL("no leader within %d ms", BOOT_WAIT_MS);
    if (!wait_node(f, names[prim], "primary", false, deadline) ||
        !wait_node(f, names[1 - prim], "replica", true, deadline))
        FAIL("%s should be a healthy primary and %s a streaming replica", names[prim],
             names[1 - prim]);
    fprintf(stderr, "primary %s, replica %s streaming %lld ms after the first create\n",
            names[prim], names[1 - prim], (long long)(tu_now_ms() - t0));
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/data/postmaster.pid", dirs[i]);
        pms[i] = read_pid(path);
        CHECK(alive(pms[i]));
    }

    /* List by labels. */
    params = json_pack("{s:{s:s}}", "labels", "reeve.io/cluster", "test/pg");
    CHECK(provider_call(&res, f->p, "list_instances", params, CALL_MS, NULL, &err) == 0);
    CHECK(json_array_size(json_object_get(res, "instances")) == 2);
    size_t i_;
    json_t *it;
    json_array_foreach(json_object_get(res, "instances"), i_, it)
        CHECK(strcmp(json_string_value(json_object_get(it, "state")), "running") == 0);
    json_decref(res);
    json_decref(params);
    res = NULL;
    params = json_pack("{s:{s:s, s:s}}", "labels", "reeve.io/node", "node-b", "team", "db");
    CHECK(provider_call(&res, f->p, "list_instances", params, CALL_MS, NULL, &err) == 0);
    CHECK(json_array_size(json_object_get(res, "instances")) == 1);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_array_get(json_object_get(res, "instances"), 0), "id")),
                 ids[1]) == 0);
    json_decref(res);
    json_decref(params);
    res = NULL;
    params = json_pack("{s:{s:s}}", "labels", "reeve.io/cluster", "other/pg");
    CHECK(provider_call(&res, f->p, "list_instances", params, CALL_MS, NULL, &err) == 0);
    CHECK(json_array_size(json_object_get(res, "instances")) == 0);
    json_decref(res);
    json_decref(params);
    res = NULL;

    /* Resize: storage grows, never shrinks. */
    params = json_pack("{s:s, s:{s:i, s:i, s:i}}", "id", ids[0], "resources", "cpu", 2, "memoryMiB",
                       1024, "storageGiB", 5);
    CHECK(provider_call(&res, f->p, "resize_instance", params, CALL_MS, "grow", &err) == 0);
    CHECK(json_integer_value(json_object_get(
              json_object_get(json_object_get(res, "instance"), "resources"), "storageGiB")) == 5);
    json_decref(res);
    json_decref(params);
    res = NULL;
    params = json_pack("{s:s, s:{s:i, s:i, s:i}}", "id", ids[0], "resources", "cpu", 2, "memoryMiB",
                       1024, "storageGiB", 2);
    CHECK(provider_call(&res, f->p, "resize_instance", params, CALL_MS, "shrink", &err) ==
          RV_EINVAL);
    json_decref(params);
    params = NULL;

    /* The replica's agent dies (its server, in a session of its own, lives
     * on): the instance is reported failed, and its delete must still stop
     * the server. */
    CHECK(kill(agents[1 - prim], SIGKILL) == 0);
    deadline = tu_now_ms() + 5000;
    while (alive(agents[1 - prim]) && tu_now_ms() < deadline)
        tu_sleep_ms(20);
    CHECK(alive(pms[1 - prim]));
    params = json_pack("{s:{s:s}}", "labels", "reeve.io/node", names[1 - prim]);
    CHECK(provider_call(&res, f->p, "list_instances", params, CALL_MS, NULL, &err) == 0);
    CHECK(strcmp(json_string_value(json_object_get(
                     json_array_get(json_object_get(res, "instances"), 0), "state")),
                 "failed") == 0);
    json_decref(res);
    json_decref(params);
    res = NULL;
    params = NULL;

    /* Delete, replica first: agents and servers gone, directories gone. */
    int64_t t_del = tu_now_ms();
    for (int k = 0; k < 2; k++) {
        int i = k == 0 ? 1 - prim : prim;
        char key[32];
        snprintf(key, sizeof key, "delete-%s", names[i]);
        params = json_pack("{s:s}", "id", ids[i]);
        if (provider_call(&res, f->p, "delete_instance", params, CALL_MS, key, &err) != 0)
            FAIL("delete %s: %s", names[i], err.msg);
        json_decref(res);
        res = NULL;
        CHECK(!alive(agents[i]) && !alive(pms[i]));
        CHECK(access(dirs[i], F_OK) != 0);
        /* Again, with another key: it is gone, which is success. */
        CHECK(provider_call(&res, f->p, "delete_instance", params, CALL_MS, "again", &err) == 0 ||
              k == 1);
        json_decref(res);
        res = NULL;
        json_decref(params);
        params = NULL;
    }
    fprintf(stderr, "both instances deleted in %lld ms\n", (long long)(tu_now_ms() - t_del));
    CHECK(provider_call(&res, f->p, "list_instances", NULL, CALL_MS, NULL, &err) == 0);
    CHECK(json_array_size(json_object_get(res, "instances")) == 0);
    snprintf(path, sizeof path, "%s/instances", f->root);
    CHECK(count_dirs(path) == 0);
out:
    json_decref(res);
    json_decref(params);
}

static void *scenario_main(void *arg)
{
    struct fixture *f = arg;
    scenario(f);
    uv_async_send(&f->r.stop);
    return NULL;
}

static void env_set(struct fixture *f, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void env_set(struct fixture *f, size_t i, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    f->env[i] = strdup(tmp);
    assert_non_null(f->env[i]);
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    *state = &f;
    if (!have_all())
        return 0;
    if (tu_tmpdir(f.base, sizeof f.base, "reeve-local-test", NULL, 0711) != 0)
        return -1;
    snprintf(f.root, sizeof f.root, "%s/root", f.base);
    snprintf(f.images, sizeof f.images, "%s/images.json", f.base);
    FILE *img = fopen(f.images, "w");
    if (img == NULL)
        return -1;
    fprintf(img, "{\"postgresql\": {\"15\": \"%s\", \"15-copy\": \"%s\"}}\n", PG_BIN, PG_BIN);
    fclose(img);
    /* A network of this run's own, so parallel runs do not meet. */
    snprintf(f.net, sizeof f.net, "127.77.%d", 10 + (int)(getpid() % 200));
    const char *path = getenv("PATH");
    env_set(&f, 0, "PATH=%s", path != NULL ? path : "/usr/bin:/bin");
    env_set(&f, 1, "REEVE_LOCAL_ROOT=%s", f.root);
    env_set(&f, 2, "REEVE_AGENT_BIN=%s", getenv("REEVE_AGENT_BIN"));
    env_set(&f, 3, "REEVE_LOCAL_NET=%s", f.net);
    env_set(&f, 4, "REEVE_LOCAL_IMAGES=%s", f.images);
    f.argv[0] = getenv("REEVE_PROVIDER_LOCAL_BIN");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    provider_stop(f->p);
    f->p = NULL;
    if (f->failure[0] != '\0' || getenv("REEVE_TEST_VERBOSE") != NULL)
        dump_logs(f->root);
    if (f->root[0])
        kill_leftovers(f->root);
    if (f->r.started) {
        uv_async_send(&f->r.stop);
        recon_run_and_free(&f->r);
    }
    dcs_client_release(&f->obs);
    tu_rm_test_dir(f->base);
    for (size_t i = 0; i < sizeof f->env / sizeof f->env[0]; i++)
        free(f->env[i]);
    curl_global_cleanup();
    return 0;
}

static void test_cluster(void **state)
{
    struct fixture *f = *state;
    if (!have_all()) {
        fprintf(stderr, "skipped: needs PostgreSQL 15 in " PG_BIN
                        ", REEVE_AGENT_BIN and REEVE_PROVIDER_LOCAL_BIN\n");
        skip();
    }
    static const char *const nodes[] = {"node-a", "node-b", "observer"};
    struct rv_error err = {0};
    struct rv_error rerr = {0};
    if (recon_start(&f->r, f->tok, "test", "pg", nodes, 3, &rerr) != 0)
        fail_msg("reconciler: %s", rerr.msg);
    assert_int_equal(dcs_client_init(&f->obs, "http://127.0.0.1:1", 5000, &err), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, scenario_main, f), 0);
    recon_run_and_free(&f->r);
    pthread_join(f->thread, NULL);
    assert_true(f->r.closed);
    if (f->failure[0] != '\0')
        fail_msg("%s", f->failure);
}

/* --- stdin is input from outside: it is validated, never trusted --- */

static bool read_line(int fd, char *out, size_t cap, int ms)
{
    size_t len = 0;
    int64_t deadline = tu_now_ms() + ms;
    while (len + 1 < cap) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - tu_now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return false;
        char c;
        if (read(fd, &c, 1) != 1)
            return false;
        if (c == '\n') {
            out[len] = '\0';
            return true;
        }
        out[len++] = c;
    }
    return false;
}

static void test_garbage(void **state)
{
    (void)state;
    const char *bin = getenv("REEVE_PROVIDER_LOCAL_BIN");
    const char *agent = getenv("REEVE_AGENT_BIN");
    if (bin == NULL || agent == NULL) {
        fprintf(stderr, "skipped: needs REEVE_PROVIDER_LOCAL_BIN and REEVE_AGENT_BIN\n");
        skip();
    }
    char dir[64] = "/tmp/reeve-local-garbage-XXXXXX", line[4096];
    assert_non_null(mkdtemp(dir));
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        int devnull = open("/dev/null", O_WRONLY);
        if (getenv("REEVE_TEST_VERBOSE") == NULL && devnull >= 0)
            dup2(devnull, 2);
        setenv("REEVE_LOCAL_ROOT", dir, 1);
        execl(bin, "reeve-provider-local", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char *frames =
        "{\"type\":\"hello\",\"protocol_versions\":[1],\"capabilities\":[\"resize\",\"volumes\"],"
        "\"reeve_version\":\"0.1.0\"}\n"
        "this is not json\n"
        "[1,2,3]\n"
        "\n";
    const char *requests =
        "{\"type\":\"request\",\"id\":1,\"method\":\"create_instance\",\"deadline_ms\":1000,"
        "\"idempotency_key\":\"k\",\"params\":{\"name\":7}}\n"
        "{\"type\":\"request\",\"id\":2,\"method\":\"list_instances\",\"deadline_ms\":1000,"
        "\"params\":{\"labels\":{\"a\":5}}}\n"
        "{\"type\":\"request\",\"id\":3,\"method\":\"create_instance\",\"deadline_ms\":1000,"
        "\"params\":{}}\n"
        "{\"type\":\"request\",\"id\":4,\"method\":\"list_instances\",\"deadline_ms\":1000,"
        "\"params\":{},\"extra\":1}\n"
        "{\"type\":\"request\",\"id\":5,\"method\":\"list_instances\",\"deadline_ms\":1000,"
        "\"params\":{}}\n";
    assert_int_equal(write(in[1], frames, strlen(frames)), (ssize_t)strlen(frames));
    /* A line longer than a frame may be (1 MiB) is skipped whole. */
    size_t big = RV_PROVIDER_FRAME_MAX + 4096;
    char *junk = malloc(big + 1);
    assert_non_null(junk);
    memset(junk, '{', big);
    junk[big] = '\n';
    size_t off = 0;
    while (off < big + 1) {
        ssize_t w = write(in[1], junk + off, big + 1 - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    free(junk);
    assert_int_equal(write(in[1], requests, strlen(requests)), (ssize_t)strlen(requests));
    assert_true(read_line(out[0], line, sizeof line, 5000));
    assert_non_null(strstr(line, "\"protocol_version\":1"));
    assert_non_null(strstr(line, "\"capabilities\":[\"resize\"]"));
    static const char *const want[] = {
        ("{\"type\":\"reply\",\"id\":1,\"error\":{\"code\":\"invalid\",\"retryable\":false,"
         "\"message\":\"create_instance needs an idempotency_key"),
        "{\"type\":\"reply\",\"id\":2,\"error\":{\"code\":\"invalid\"",
        "{\"type\":\"reply\",\"id\":3,\"error\":{\"code\":\"invalid\"",
        "{\"type\":\"reply\",\"id\":4,\"error\":{\"code\":\"invalid\"",
        "{\"type\":\"reply\",\"id\":5,\"result\":{\"instances\":[]}}",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_true(read_line(out[0], line, sizeof line, 5000));
        if (strncmp(line, want[i], strlen(want[i])) != 0 &&
            !(i == 0 && strstr(line, "\"id\":1,\"error\":{\"code\":\"invalid\"") != NULL))
            fail_msg("reply %zu: got %s", i + 1, line);
    }
    /* End of input: it exits 0. */
    close(in[1]);
    int status = -1;
    int64_t deadline = tu_now_ms() + 5000;
    while (waitpid(pid, &status, WNOHANG) == 0 && tu_now_ms() < deadline)
        tu_sleep_ms(20);
    if (!WIFEXITED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the provider did not exit at the end of its input");
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    close(out[0]);
    tu_rm_tree(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage),
        cmocka_unit_test_setup_teardown(test_cluster, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
