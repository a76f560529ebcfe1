/* backup_pg.c - taking backups on this node (see backup_pg.h). */
#include "backup_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup_mariadb.h"
#include "buf.h"
#include "child.h"
#include "crypto.h"
#include "fsutil.h"
#include "log.h"
#include "s3.h"

#define COMP "backup"

extern char **environ;

/* --- time and ids --- */

int64_t backup_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void backup_time_format(char out[32], int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm t;
    char sec[24];
    gmtime_r(&s, &t);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &t);
    snprintf(out, 32, "%.23s.%03uZ", sec, (unsigned)(ms % 1000));
}

int backup_id_new(char out[32], int64_t now_ms)
{
    uint8_t r[4];
    time_t s = (time_t)(now_ms / 1000);
    struct tm t;
    char sec[20];
    if (crypto_random(r, sizeof(r)) != 0)
        return RV_ECRYPTO;
    gmtime_r(&s, &t);
    strftime(sec, sizeof(sec), "%Y%m%dT%H%M%SZ", &t);
    snprintf(out, 32, "%.16s-%02x%02x%02x%02x", sec, r[0], r[1], r[2], r[3]);
    return 0;
}

static bool canceled(const struct backup_ctx *c)
{
    return c->cancel != NULL && atomic_load(c->cancel);
}

/* --- context --- */

int backup_dir(char *out, size_t cap, const struct agent_config *cfg, struct rv_error *err)
{
    if ((size_t)snprintf(out, cap, "%s/backup", cfg->state_dir) >= cap)
        return rv_error_set(err, RV_ELIMIT, false, "state_dir '%s' is too long", cfg->state_dir);
    return 0;
}

int backup_store_open(struct objstore **out, char *location, size_t cap, json_t *d,
                      struct rv_error *err)
{
    const char *kind = json_string_value(json_object_get(d, "kind"));
    *out = NULL;
    if (kind != NULL && strcmp(kind, "local") == 0) {
        const char *path = json_string_value(json_object_get(d, "path"));
        if (path == NULL || path[0] != '/')
            return rv_error_set(err, RV_EINVAL, false,
                                "backup destination: a local destination needs an absolute path");
        if ((size_t)snprintf(location, cap, "file://%s", path) >= cap)
            return rv_error_set(err, RV_ELIMIT, false, "backup destination path too long");
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return rv_error_set(err, RV_EIO, false, "cannot create backup destination '%s': %s",
                                path, strerror(errno));
        return objstore_local_new(out, path, err);
    }
    if (kind != NULL && strcmp(kind, "s3") == 0) {
        const char *bucket = json_string_value(json_object_get(d, "bucket"));
        const char *prefix = json_string_value(json_object_get(d, "prefix"));
        if (bucket == NULL)
            return rv_error_set(err, RV_EINVAL, false, "backup destination: s3 needs a bucket");
        if ((size_t)snprintf(location, cap, "s3://%s%s%s", bucket,
                             prefix != NULL && prefix[0] ? "/" : "",
                             prefix != NULL ? prefix : "") >= cap)
            return rv_error_set(err, RV_ELIMIT, false, "backup destination too long");
        struct s3_config sc = {
            .endpoint = json_string_value(json_object_get(d, "endpoint")),
            .region = json_string_value(json_object_get(d, "region")),
            .bucket = bucket,
            .prefix = prefix,
            .access_key_id = json_string_value(json_object_get(d, "access_key_id")),
            .secret_access_key = json_string_value(json_object_get(d, "secret_access_key")),
            .session_token = json_string_value(json_object_get(d, "session_token")),
            .credentials_name = "backup destination",
        };
        if (sc.endpoint == NULL || sc.region == NULL || sc.access_key_id == NULL ||
            sc.secret_access_key == NULL)
            return rv_error_set(err, RV_EINVAL, false,
                                "backup destination: s3 needs endpoint, region, access_key_id "
                                "and secret_access_key");
        return objstore_s3_new(out, &sc, err);
    }
    return rv_error_set(err, RV_EINVAL, false, "backup destination: kind must be 'local' or 's3'");
}

static int owner_of(struct backup_ctx *c, struct rv_error *err)
{
    c->run_as = false;
    c->uid = (uid_t)-1;
    c->gid = (gid_t)-1;
    if (geteuid() != 0 || c->cfg->pg.os_user == NULL)
        return 0;
    struct passwd *pw = getpwnam(c->cfg->pg.os_user);
    if (pw == NULL)
        return rv_error_set(err, RV_EINVAL, false, "engine.os_user '%s' does not exist",
                            c->cfg->pg.os_user);
    c->run_as = true;
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
    return 0;
}

static void ctx_drop_config(struct backup_ctx *c)
{
    if (c->store != NULL)
        c->store->free(c->store);
    c->store = NULL;
    json_decref(c->config);
    c->config = NULL;
    c->backup = NULL;
    crypto_wipe(c->key, sizeof(c->key));
    c->has_key = false;
    c->location[0] = '\0';
}

int backup_ctx_reload(struct backup_ctx *c, struct rv_error *err)
{
    int rc;
    ctx_drop_config(c);
    rc = backup_db_config_load(&c->config, c->db, err);
    if (rc != 0 || c->config == NULL)
        return rc;
    json_t *bk = json_object_get(c->config, "backup");
    if (!json_is_object(bk))
        return 0;
    c->backup = bk;
    const char *key = json_string_value(json_object_get(bk, "encryption_key"));
    if (key != NULL) {
        rc = bstream_key_parse(c->key, key, err);
        if (rc != 0)
            return rc;
        c->has_key = true;
    }
    return backup_store_open(&c->store, c->location, sizeof(c->location),
                             json_object_get(bk, "destination"), err);
}

int backup_ctx_open(struct backup_ctx *c, const struct agent_config *cfg, bool create,
                    struct rv_error *err)
{
    char dir[RV_PG_PATH_MAX + 16];
    int rc;
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    rc = owner_of(c, err);
    if (rc == 0)
        rc = backup_dir(dir, sizeof(dir), cfg, err);
    if (rc == 0 && create && mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST)
        rc = rv_error_set(err, RV_EIO, false, "cannot create state_dir '%s': %s", cfg->state_dir,
                          strerror(errno));
    if (rc == 0 && create && c->run_as) {
        /* The server's OS user (archive_command) must reach <state_dir>/backup,
         * not list or read the state directory itself. */
        struct stat sb;
        if (stat(cfg->state_dir, &sb) == 0 && (sb.st_mode & 0111) != 0111)
            chmod(cfg->state_dir, (sb.st_mode & 07777) | 0111);
    }
    if (rc == 0) {
        snprintf(c->dir, sizeof(c->dir), "%s", dir);
        rc = backup_db_open(&c->db, dir, create, c->uid, c->gid, err);
    }
    if (rc != 0) {
        backup_ctx_release(c);
        return rc;
    }
    return backup_ctx_reload(c, err);
}

void backup_ctx_release(struct backup_ctx *c)
{
    ctx_drop_config(c);
    backup_db_free(c->db);
    c->db = NULL;
}

/* --- child processes --- */

int backup_spawn(struct child *ch, const char *const argv[], char *const envp[], bool run_as,
                 uid_t uid, gid_t gid, bool feed, struct rv_error *err)
{
    struct child_spec s = {.argv = argv,
                           .envp = envp,
                           .run_as = run_as,
                           .uid = uid,
                           .gid = gid,
                           .in = feed ? CHILD_IO_PIPE : CHILD_IO_NULL,
                           .out = CHILD_IO_PIPE,
                           .err = CHILD_IO_PIPE,
                           .label = "backup"};
    int rc = child_spawn(ch, &s, -1, err);
    if (rc == 0 && ch->in >= 0)
        fcntl(ch->in, F_SETFL, fcntl(ch->in, F_GETFL) | O_NONBLOCK);
    return rc;
}

int backup_child_finish(struct child *ch, bool kill_it)
{
    int status = 0;
    if (kill_it || ch->pid <= 0) {
        child_release(ch);
        return -1;
    }
    child_close_pipes(ch);
    child_reap(&status, ch, INT64_MAX, NULL);
    return child_exit_code(status);
}

char **backup_env(const char *const *extra)
{
    size_t n = 0;
    for (const char *const *p = extra; p != NULL && *p != NULL; p++)
        n++;
    char **envp = calloc(n + 8, sizeof(*envp));
    if (envp == NULL)
        return NULL;
    size_t k = 0;
    const char *path = getenv("PATH");
    static char path_default[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    static char lc[] = "LC_ALL=C";
    static char home[] = "HOME=/";
    if (path != NULL) {
        for (char **e = environ; *e != NULL; e++)
            if (strncmp(*e, "PATH=", 5) == 0)
                envp[k++] = *e;
    } else {
        envp[k++] = path_default;
    }
    envp[k++] = lc;
    envp[k++] = home;
    for (size_t i = 0; i < n; i++)
        envp[k++] = (char *)extra[i];
    envp[k] = NULL;
    return envp;
}

/* --- the stream --- */

struct run {
    struct backup_ctx *c;
    const char *id;
    struct buf err_tail;
    char line[512]; /* the current stderr line */
    size_t line_len;
    int percent; /* pg_basebackup -P, -1 unknown */
    uint64_t start_lsn, end_lsn;
    uint32_t timeline;
    uint64_t raw, stored;
    int64_t last_progress;
};

static void parse_line(struct run *r)
{
    char lsn[32];
    unsigned tli = 0;
    const char *p;
    r->line[r->line_len] = '\0';
    if ((p = strstr(r->line, "write-ahead log start point: ")) != NULL &&
        sscanf(p, "write-ahead log start point: %31s on timeline %u", lsn, &tli) == 2) {
        pg_lsn_parse(&r->start_lsn, lsn);
        r->timeline = tli;
    } else if ((p = strstr(r->line, "write-ahead log end point: ")) != NULL &&
               sscanf(p, "write-ahead log end point: %31s", lsn) == 1) {
        pg_lsn_parse(&r->end_lsn, lsn);
    } else if ((p = strchr(r->line, '(')) != NULL && strstr(p, "%)") != NULL) {
        int pc = atoi(p + 1);
        if (pc >= 0 && pc <= 100)
            r->percent = pc;
    }
    r->line_len = 0;
}

static void take_stderr(struct run *r, const char *data, size_t n)
{
    child_keep_tail(&r->err_tail, data, n, RV_BACKUP_STDERR_MAX);
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n' || data[i] == '\r')
            parse_line(r);
        else if (r->line_len + 1 < sizeof(r->line))
            r->line[r->line_len++] = data[i];
    }
}

static void progress(struct run *r, bool force)
{
    int64_t now = child_now_ms();
    char pc[16] = "";
    if (!force && now - r->last_progress < RV_BACKUP_PROGRESS_MS)
        return;
    r->last_progress = now;
    if (r->percent >= 0)
        snprintf(pc, sizeof(pc), "%d%%, ", r->percent);
    if (r->c->progress_stderr)
        fprintf(stderr, "backup %s: %s%.1f MiB read, %.1f MiB stored\n", r->id, pc,
                (double)r->raw / 1048576.0, (double)r->stored / 1048576.0);
    else
        log_info(COMP, "backup %s: %s%.1f MiB read, %.1f MiB stored", r->id, pc,
                 (double)r->raw / 1048576.0, (double)r->stored / 1048576.0);
    backup_db_log(r->c->db, r->id, "info", "progress: %s%" PRIu64 " bytes read, %" PRIu64 " stored",
                  pc, r->raw, r->stored);
}

static void on_chunk(uint64_t raw, uint64_t stored, void *ud)
{
    struct run *r = ud;
    (void)raw;
    r->stored = stored;
}

/* Pump the child's stdout into sink until both pipes close. */
static int pump(struct run *r, struct child *ch, struct rv_sink *sink, struct rv_error *err)
{
    char *chunk = malloc(RV_BACKUP_CHUNK);
    int64_t deadline = child_now_ms() + RV_BACKUP_TIMEOUT_MS;
    int rc = 0;
    if (chunk == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    while (ch->out >= 0 || ch->err >= 0) {
        struct pollfd p[2] = {{.fd = ch->out, .events = POLLIN}, {.fd = ch->err, .events = POLLIN}};
        if (canceled(r->c)) {
            rc = rv_error_set(err, RV_ECANCELED, false, "backup canceled: the agent is stopping");
            break;
        }
        if (child_now_ms() > deadline) {
            rc = rv_error_set(err, RV_ETIMEOUT, false, "backup did not finish within %d s",
                              RV_BACKUP_TIMEOUT_MS / 1000);
            break;
        }
        int pr = poll(p, 2, 500);
        if (pr < 0 && errno != EINTR) {
            rc = rv_error_set(err, RV_EIO, false, "poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < 2 && pr > 0 && rc == 0; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            ssize_t n = read(p[i].fd, chunk, RV_BACKUP_CHUNK);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close(p[i].fd);
                if (i == 0)
                    ch->out = -1;
                else
                    ch->err = -1;
                continue;
            }
            if (i == 1) {
                take_stderr(r, chunk, (size_t)n);
                continue;
            }
            r->raw += (uint64_t)n;
            rc = rv_sink_write(sink, chunk, (size_t)n, err);
        }
        if (rc != 0)
            break;
        progress(r, false);
    }
    free(chunk);
    return rc;
}

/* --- records --- */

json_t *backup_record_new(struct backup_ctx *c, const char *id, const char *schedule,
                          const char *method, bool with_params, int64_t started)
{
    char at[32];
    char cluster[2 * RV_AGENT_NAME_MAX + 2];
    json_t *bk = c->backup;
    json_t *args = json_object_get(bk, "args");
    json_t *schemas = json_object_get(bk, "schemas");
    json_t *r = json_object();
    static const char *const nulls[] = {"error",    "ended_at",      "duration_ms", "size",
                                        "raw_size", "checksum",      "start_lsn",   "end_lsn",
                                        "timeline", "consistent_at", "verify",      NULL};
    int bad = r == NULL;
    backup_time_format(at, started);
    snprintf(cluster, sizeof(cluster), "%s/%s", c->cfg->namespace_, c->cfg->cluster);
    bad = bad || json_object_set_new(r, "backup_id", json_string(id)) != 0;
    bad = bad || json_object_set_new(r, "set_id", json_string(id)) != 0;
    bad = bad || json_object_set_new(r, "cluster", json_string(cluster)) != 0;
    bad = bad || json_object_set_new(r, "node", json_string(c->cfg->node)) != 0;
    bad = bad || json_object_set_new(r, "type", json_string("full")) != 0;
    bad = bad || json_object_set_new(r, "method", json_string(method)) != 0;
    bad = bad || json_object_set_new(r, "params",
                                     with_params && json_is_array(args) ? json_deep_copy(args)
                                                                        : json_array()) != 0;
    bad = bad || json_object_set_new(r, "schedule", json_string(schedule)) != 0;
    bad = bad || json_object_set_new(r, "status", json_string("running")) != 0;
    bad = bad || json_object_set_new(r, "started_at", json_string(at)) != 0;
    bad = bad || json_object_set_new(r, "location", json_string("")) != 0;
    bad = bad || json_object_set_new(r, "name", json_string("")) != 0;
    bad = bad || json_object_set_new(r, "encrypted", json_boolean(c->has_key)) != 0;
    bad = bad || json_object_set_new(r, "compression", json_string("zstd")) != 0;
    bad = bad || json_object_set_new(
                     r, "retention_days",
                     json_integer(json_integer_value(json_object_get(bk, "retention_days")))) != 0;
    bad = bad ||
          json_object_set_new(r, "schemas",
                              json_is_array(schemas) ? json_deep_copy(schemas) : json_array()) != 0;
    for (size_t i = 0; nulls[i] != NULL && !bad; i++)
        bad = json_object_set_new(r, nulls[i], json_null()) != 0;
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static void lsn_text(char *out, size_t cap, uint64_t lsn)
{
    snprintf(out, cap, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xffffffffu);
}

void backup_record_end(json_t *rec, const char *status, const char *error, int64_t started)
{
    char at[32];
    int64_t now = backup_now_ms();
    backup_time_format(at, now);
    json_object_set_new(rec, "status", json_string(status));
    json_object_set_new(rec, "error", error != NULL ? json_string(error) : json_null());
    json_object_set_new(rec, "ended_at", json_string(at));
    json_object_set_new(rec, "duration_ms", json_integer(now - started));
}

int backup_manifest_put(struct backup_ctx *c, const char *id, json_t *rec, struct rv_error *err)
{
    char key[96];
    struct rv_sink *s = NULL;
    char *text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc;
    if (text == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    snprintf(key, sizeof(key), "base/%s/manifest.json", id);
    rc = c->store->put(c->store, key, &s, err);
    if (rc == 0)
        rc = rv_sink_write(s, text, strlen(text), err);
    if (rc == 0)
        rc = rv_sink_finish(s, err);
    else
        rv_sink_abort(s);
    free(text);
    return rc;
}

/* --- methods --- */

int backup_lock(int *fd, struct backup_ctx *c, struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/backup.lock", c->dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return rv_error_set(err, RV_EIO, false, "cannot open '%s': %s", path, strerror(errno));
    if (c->run_as)
        (void)!fchown(*fd, c->uid, c->gid);
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
        return rv_error_set(err, RV_EBUSY, true,
                            "another backup is running on this node (it holds '%s')", path);
    }
    return 0;
}

int backup_password(char out[CRYPTO_SHA256_HEX_SIZE], struct backup_ctx *c, const char *who,
                    const char *secret, const char *purpose, struct rv_error *err)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    char label[2 * RV_AGENT_NAME_MAX + 64];
    const char *pw = c->cfg->pg.replication_password;
    if (pw == NULL) {
        char *stored = NULL;
        int rc = backup_db_secret_get(&stored, c->db, secret, err);
        if (rc == RV_ENOTFOUND)
            rc = rv_error_set(err, RV_ENOTFOUND, false,
                              "no password for the backup %s: the agent configuration "
                              "needs engine.replication_password",
                              who);
        if (rc == 0)
            snprintf(out, CRYPTO_SHA256_HEX_SIZE, "%s", stored);
        if (stored != NULL) {
            crypto_wipe(stored, strlen(stored));
            free(stored);
        }
        return rc;
    }
    snprintf(label, sizeof(label), "%s:%s/%s", purpose, c->cfg->namespace_, c->cfg->cluster);
    if (crypto_hmac_sha256(mac, pw, strlen(pw), label, strlen(label)) != 0 ||
        crypto_hex_encode(out, CRYPTO_SHA256_HEX_SIZE, mac, sizeof(mac)) != 0)
        return rv_error_set(err, RV_ECRYPTO, false, "cannot derive the password of the backup %s",
                            who);
    crypto_wipe(mac, sizeof(mac));
    return 0;
}

/* The backup role's password (see backup_password and docs/backups.md). */
static int role_password(char out[CRYPTO_SHA256_HEX_SIZE], struct backup_ctx *c,
                         struct rv_error *err)
{
    return backup_password(out, c, "role " BACKUP_ROLE, BACKUP_ROLE ".password",
                           "reeve-backup-role", err);
}

struct argv_buf {
    char *v[RV_BACKUP_ARGS_MAX + 16];
    size_t n;
    char exe[RV_PG_PATH_MAX + 32];
    char port[16];
};

static int method_argv(struct argv_buf *a, struct backup_ctx *c, const char **method,
                       struct rv_error *err)
{
    const char *m = json_string_value(json_object_get(c->backup, "method"));
    a->n = 0;
    if (m == NULL || strcmp(m, "pg_basebackup") == 0) {
        *method = "pg_basebackup";
        snprintf(a->exe, sizeof(a->exe), "%s/pg_basebackup", c->cfg->pg.bin_dir);
        snprintf(a->port, sizeof(a->port), "%d", c->cfg->pg.port);
        const char *fixed[] = {a->exe,      "-h",    c->cfg->pg.socket_dir,
                               "-p",        a->port, "-U",
                               BACKUP_ROLE, "-w",    "-D",
                               "-",         "-F",    "tar",
                               "-X",        "fetch", "--checkpoint=fast",
                               "-v",        "-P",    NULL};
        for (size_t i = 0; fixed[i] != NULL; i++)
            a->v[a->n++] = (char *)fixed[i];
        a->v[a->n] = NULL;
        return 0;
    }
    if (strcmp(m, "external") != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "backup method '%s' is not supported (pg_basebackup or external)", m);
    *method = "external";
    const char *prog = json_string_value(json_object_get(c->backup, "program"));
    json_t *args = json_object_get(c->backup, "args");
    if (prog == NULL || prog[0] != '/')
        return rv_error_set(err, RV_EINVAL, false,
                            "backup method 'external' needs an absolute 'program'");
    if (json_array_size(args) > RV_BACKUP_ARGS_MAX)
        return rv_error_set(err, RV_ELIMIT, false, "backup program: at most %d arguments",
                            RV_BACKUP_ARGS_MAX);
    a->v[a->n++] = (char *)prog;
    for (size_t i = 0; i < json_array_size(args); i++) {
        const char *s = json_string_value(json_array_get(args, i));
        if (s == NULL)
            return rv_error_set(err, RV_EINVAL, false, "backup program arguments are strings");
        a->v[a->n++] = (char *)s;
    }
    a->v[a->n] = NULL;
    return 0;
}

/* Run the method into base/<id>/data. */
static int stream_backup(struct backup_ctx *c, struct run *r, const char *id, const char *method,
                         struct argv_buf *a, struct bstream_result *res, struct rv_error *err)
{
    char key[96];
    char pw[CRYPTO_SHA256_HEX_SIZE];
    char e_pw[CRYPTO_SHA256_HEX_SIZE + 16], e_id[64], e_cl[2 * RV_AGENT_NAME_MAX + 32];
    char e_host[RV_PG_PATH_MAX + 16], e_port[32], e_data[RV_PG_PATH_MAX + 32];
    struct rv_sink *down = NULL, *enc = NULL;
    struct child ch = CHILD_INIT;
    char **envp = NULL;
    int rc, code;
    struct bstream_opts opts = {
        .key = c->has_key ? c->key : NULL, .progress = on_chunk, .progress_ud = r};
    rc = role_password(pw, c, err);
    if (rc != 0)
        return rc;
    snprintf(e_pw, sizeof(e_pw), "PGPASSWORD=%s", pw);
    snprintf(e_id, sizeof(e_id), "REEVE_BACKUP_ID=%s", id);
    snprintf(e_cl, sizeof(e_cl), "REEVE_CLUSTER=%s/%s", c->cfg->namespace_, c->cfg->cluster);
    snprintf(e_host, sizeof(e_host), "PGHOST=%s", c->cfg->pg.socket_dir);
    snprintf(e_port, sizeof(e_port), "PGPORT=%d", c->cfg->pg.port);
    snprintf(e_data, sizeof(e_data), "REEVE_DATA_DIR=%s", c->cfg->pg.data_dir);
    /* REEVE_SCHEMAS: the schemas an external tool should dump (comma
     * separated, empty: all); pg_basebackup always copies everything. */
    json_t *schemas = json_object_get(c->backup, "schemas");
    struct buf e_sc = BUF_INIT;
    rc = buf_puts(&e_sc, "REEVE_SCHEMAS=");
    for (size_t i = 0; rc == 0 && i < json_array_size(schemas); i++) {
        const char *sc = json_string_value(json_array_get(schemas, i));
        if (sc != NULL)
            rc = buf_printf(&e_sc, "%s%s", i > 0 ? "," : "", sc);
    }
    if (rc != 0) {
        buf_release(&e_sc);
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    const char *extra[] = {e_pw,
                           e_id,
                           e_cl,
                           e_host,
                           e_port,
                           e_data,
                           e_sc.data,
                           "PGUSER=" BACKUP_ROLE,
                           "PGCONNECT_TIMEOUT=10",
                           "PGDATABASE=postgres",
                           NULL};
    envp = backup_env(extra);
    if (envp == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), "base/%s/data", id);
    rc = c->store->put(c->store, key, &down, err);
    if (rc != 0)
        goto out;
    rc = bstream_encoder_new(&enc, down, &opts, res, err);
    if (rc != 0) {
        rv_sink_abort(down);
        goto out;
    }
    rc = backup_spawn(&ch, (const char *const *)a->v, envp, c->run_as, c->uid, c->gid, false, err);
    if (rc != 0)
        goto out;
    log_info(COMP, "backup %s: running %s", id, method);
    rc = pump(r, &ch, enc, err);
    code = backup_child_finish(&ch, rc != 0);
    if (rc == 0 && code != 0) {
        char tail[320];
        child_tail_line(tail, sizeof(tail), &r->err_tail);
        rc = rv_error_set(err, RV_ECHILD, false, "%s failed (exit %d): %s", method, code, tail);
    }
    if (rc == 0 && r->raw == 0)
        rc = rv_error_set(err, RV_ECHILD, false, "%s wrote nothing to its standard output", method);
    if (rc == 0) {
        rc = rv_sink_finish(enc, err);
        enc = NULL;
    }
out:
    rv_sink_abort(enc);
    crypto_wipe(pw, sizeof(pw));
    crypto_wipe(e_pw, sizeof(e_pw));
    buf_release(&e_sc);
    free(envp);
    return rc;
}

static void notify(struct backup_ctx *c, json_t *rec, bool ok)
{
    struct rv_error e = {0};
    json_t *n = json_object_get(c->backup, "notify");
    const char *cmd = json_string_value(json_object_get(n, ok ? "success" : "failure"));
    const char *id = json_string_value(json_object_get(rec, "backup_id"));
    if (cmd == NULL)
        return;
    if (backup_hook_run(c, ok ? "success notification" : "failure notification", cmd, rec, &e) !=
        0) {
        log_warn(COMP, "backup %s: %s", id, e.msg);
        backup_db_log(c->db, id, "warn", "%s", e.msg);
    }
}

int backup_full(json_t **out, struct backup_ctx *c, const char *schedule, struct rv_error *err)
{
    char id[32], key[96], loc[RV_PG_PATH_MAX + 256], lsn[40];
    struct run r = {.c = c, .percent = -1};
    struct bstream_result res = {0};
    struct argv_buf a;
    const char *method = "pg_basebackup";
    int64_t started = backup_now_ms();
    json_t *rec = NULL;
    struct rv_error e2 = {0};
    int rc;
    if (out != NULL)
        *out = NULL;
    if (c->backup == NULL || c->store == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "no backup configuration for this cluster (the reconciler has not "
                            "sent one yet, or spec.backup is not set)");
    if (backup_is_mariadb(c)) /* method "mariabackup": agent/backup_mariadb.c */
        return backup_mdb_full(out, c, schedule, err);
    if (backup_id_new(id, started) != 0)
        return rv_error_set(err, RV_ECRYPTO, false, "cannot make a backup id");
    int lock = -1;
    if ((rc = backup_lock(&lock, c, err)) != 0)
        return rc;
    r.id = id;
    r.last_progress = child_now_ms();
    buf_init(&r.err_tail);
    rc = method_argv(&a, c, &method, err);
    rec = backup_record_new(c, id, schedule, method, true, started);
    if (rec == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), "base/%s/data", id);
    snprintf(loc, sizeof(loc), "%s/%s", c->location, key);
    json_object_set_new(rec, "name", json_string(key));
    json_object_set_new(rec, "location", json_string(loc));
    if (backup_db_record_put(c->db, rec, &e2) != 0)
        log_warn(COMP, "backup %s: cannot record it: %s", id, e2.msg);
    backup_db_log(c->db, id, "info", "started (%s, %s)", method, schedule);
    log_info(COMP, "backup %s started (%s, %s)", id, method, schedule);
    if (rc != 0)
        goto done;
    const char *pre = json_string_value(json_object_get(c->backup, "pre_script"));
    if (pre != NULL && (rc = backup_hook_run(c, "pre script", pre, rec, err)) != 0)
        goto done;
    rc = stream_backup(c, &r, id, method, &a, &res, err);
    if (rc != 0)
        goto done;
    progress(&r, true);
    json_object_set_new(rec, "size", json_integer((json_int_t)res.stored_bytes));
    json_object_set_new(rec, "raw_size", json_integer((json_int_t)res.raw_bytes));
    json_object_set_new(rec, "checksum", json_string(res.sha256));
    json_object_set_new(rec, "encrypted", json_boolean(res.encrypted));
    if (r.start_lsn != 0) {
        lsn_text(lsn, sizeof(lsn), r.start_lsn);
        json_object_set_new(rec, "start_lsn", json_string(lsn));
        json_object_set_new(rec, "timeline", json_integer(r.timeline));
    }
    if (r.end_lsn != 0) {
        lsn_text(lsn, sizeof(lsn), r.end_lsn);
        json_object_set_new(rec, "end_lsn", json_string(lsn));
    }
    backup_record_end(rec, "succeeded", NULL, started);
    json_object_set(rec, "consistent_at", json_object_get(rec, "ended_at"));
    rc = backup_manifest_put(c, id, rec, err);
    if (rc != 0)
        goto done;
    const char *post = json_string_value(json_object_get(c->backup, "post_script"));
    if (post != NULL && backup_hook_run(c, "post script", post, rec, &e2) != 0) {
        log_warn(COMP, "backup %s: %s", id, e2.msg);
        backup_db_log(c->db, id, "warn", "%s", e2.msg);
    }
done:
    if (rc != 0) {
        backup_record_end(rec, "failed", err->msg, started);
        backup_db_log(c->db, id, "error", "%s", err->msg);
        log_error(COMP, "backup %s failed: %s", id, err->msg);
    } else {
        backup_db_log(c->db, id, "info", "succeeded: %" PRIu64 " bytes stored, sha256 %s",
                      res.stored_bytes, res.sha256);
        log_info(COMP, "backup %s succeeded: %" PRIu64 " bytes stored", id, res.stored_bytes);
    }
    if (backup_db_record_put(c->db, rec, &e2) != 0)
        log_warn(COMP, "backup %s: cannot record it: %s", id, e2.msg);
    notify(c, rec, rc == 0);
    if (out != NULL) {
        *out = rec;
        rec = NULL;
    }
out:
    json_decref(rec);
    buf_release(&r.err_tail);
    close(lock);
    return rc;
}

/* --- hooks --- */

int backup_hook_run(struct backup_ctx *c, const char *what, const char *command, json_t *rec,
                    struct rv_error *err)
{
    char e_id[64], e_cl[2 * RV_AGENT_NAME_MAX + 32], e_node[RV_AGENT_NAME_MAX + 16];
    char e_st[48], e_loc[RV_PG_PATH_MAX + 160], e_err[RV_ERROR_MSG_MAX + 16];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    struct child_result r;
    char **envp = NULL;
    int rc = 0;
    const char *err_text = json_string_value(json_object_get(rec, "error"));
    snprintf(e_id, sizeof(e_id), "REEVE_BACKUP_ID=%s",
             json_string_value(json_object_get(rec, "backup_id")));
    snprintf(e_cl, sizeof(e_cl), "REEVE_CLUSTER=%s/%s", c->cfg->namespace_, c->cfg->cluster);
    snprintf(e_node, sizeof(e_node), "REEVE_NODE=%s", c->cfg->node);
    snprintf(e_st, sizeof(e_st), "REEVE_STATUS=%s",
             json_string_value(json_object_get(rec, "status")));
    snprintf(e_loc, sizeof(e_loc), "REEVE_LOCATION=%s",
             json_string_value(json_object_get(rec, "location")));
    snprintf(e_err, sizeof(e_err), "REEVE_ERROR=%s", err_text != NULL ? err_text : "");
    const char *extra[] = {e_id, e_cl, e_node, e_st, e_loc, e_err, NULL};
    envp = backup_env(extra);
    if (envp == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    struct child_spec s = {.argv = argv,
                           .envp = envp,
                           .run_as = c->run_as,
                           .uid = c->uid,
                           .gid = c->gid,
                           .label = what};
    struct child_opts o = {.timeout_ms = RV_BACKUP_HOOK_TIMEOUT_MS,
                           .cancel = c->cancel,
                           .output_max = RV_BACKUP_STDERR_MAX};
    rc = child_run(&r, &s, 1, &o, err);
    if (rc == 0 && r.why == RV_ETIMEOUT)
        rc = rv_error_set(err, RV_ETIMEOUT, false, "%s did not finish within %d s (killed)", what,
                          RV_BACKUP_HOOK_TIMEOUT_MS / 1000);
    else if (rc == 0 && r.why == RV_ECANCELED)
        rc = rv_error_set(err, RV_ECANCELED, false, "%s canceled: the agent is stopping", what);
    else if (rc == 0 && r.exit_code[0] != 0) {
        char tail[256];
        child_tail_line(tail, sizeof(tail), &r.out);
        rc = rv_error_set(err, RV_ECHILD, false, "%s failed (exit %d): %s", what, r.exit_code[0],
                          tail);
    }
    child_result_release(&r);
    free(envp);
    return rc;
}

/* --- the backup role --- */

static int pg_connect(PGconn **out, struct backup_ctx *c, struct rv_error *err)
{
    return pg_connect_local(out, c->cfg->pg.socket_dir, c->cfg->pg.port, c->cfg->pg.superuser,
                            "reeve-agent-backup", 0, err);
}

static int sql(PGconn *pc, const char *q, struct rv_error *err)
{
    PGresult *r = PQexec(pc, q);
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", r != NULL ? PQresultErrorMessage(r) : "no result");
        msg[strcspn(msg, "\n")] = '\0';
        rc = rv_error_set(err, RV_EDB, false, "backup role: %s", msg);
    }
    PQclear(r);
    return rc;
}

static const char hba_mark[] = "# reeve-agent backups: the backup role over the unix socket\n";

/* Put the backup role's lines first in pg_hba.conf (once). */
static int hba_ensure(struct backup_ctx *c, bool *changed, struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    struct buf b = BUF_INIT;
    struct fs_owner o = {c->uid, c->gid};
    size_t head = 0;
    int rc = 0;
    *changed = false;
    snprintf(path, sizeof(path), "%s/pg_hba.conf", c->cfg->pg.data_dir);
    if (buf_printf(&b, "%slocal replication %s scram-sha-256\nlocal all %s scram-sha-256\n",
                   hba_mark, BACKUP_ROLE, BACKUP_ROLE) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    head = b.len;
    rc = fs_read_file(&b, path, RV_PG_CONF_FILE_MAX, NULL, err);
    if (rc != 0 || strstr(b.data + head, hba_mark) != NULL)
        goto out;
    rc = fs_write_atomic(path, b.data, b.len, 0600, c->run_as ? &o : NULL, NULL, err);
    *changed = rc == 0;
out:
    buf_release(&b);
    return rc;
}

int backup_role_ensure(struct backup_ctx *c, bool primary, struct rv_error *err)
{
    char pw[CRYPTO_SHA256_HEX_SIZE];
    char *verifier = NULL, *lit = NULL, *q = NULL;
    PGconn *pc = NULL;
    bool changed = false;
    int rc = role_password(pw, c, err);
    if (rc != 0)
        return rc;
    rc = backup_db_secret_set(c->db, BACKUP_ROLE ".password", pw, err);
    if (rc == 0)
        rc = hba_ensure(c, &changed, err);
    if (rc == 0)
        rc = pg_connect(&pc, c, err);
    if (rc != 0)
        goto out;
    if (changed && (rc = sql(pc, "SELECT pg_reload_conf()", err)) != 0)
        goto out;
    if (!primary)
        goto out;
    verifier = PQencryptPasswordConn(pc, pw, BACKUP_ROLE, "scram-sha-256");
    lit = verifier != NULL ? PQescapeLiteral(pc, verifier, strlen(verifier)) : NULL;
    if (lit == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "cannot compute the backup role's verifier");
        goto out;
    }
    size_t cap = strlen(lit) + 512;
    q = malloc(cap);
    if (q == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    /* pg_read_all_data lets an external tool (pg_dump) read every table. */
    snprintf(q, cap,
             "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN"
             " CREATE ROLE %s WITH LOGIN REPLICATION; END IF; END$$;"
             "ALTER ROLE %s WITH LOGIN REPLICATION PASSWORD %s;"
             "GRANT pg_read_all_data TO %s;",
             BACKUP_ROLE, BACKUP_ROLE, BACKUP_ROLE, lit, BACKUP_ROLE);
    rc = sql(pc, q, err);
out:
    if (q != NULL) {
        crypto_wipe(q, strlen(q));
        free(q);
    }
    PQfreemem(lit);
    PQfreemem(verifier);
    PQfinish(pc);
    crypto_wipe(pw, sizeof(pw));
    return rc;
}

int backup_pg_in_recovery(bool *out, struct backup_ctx *c, struct rv_error *err)
{
    PGconn *pc = NULL;
    int rc = pg_connect(&pc, c, err);
    *out = false;
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(pc, "SELECT pg_is_in_recovery()");
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = rv_error_set(err, RV_EUNAVAIL, true, "the local server did not answer");
    else
        *out = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    PQfinish(pc);
    return rc;
}

int backup_verify_checksum(struct backup_ctx *c, const char *backup_id, const char *checksum,
                           struct rv_error *err)
{
    char key[96];
    struct rv_source *src = NULL;
    struct bstream_result res;
    int rc;
    if (c->store == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false, "no backup destination configured");
    snprintf(key, sizeof(key), "base/%s/data", backup_id);
    rc = c->store->get(c->store, key, &src, err);
    if (rc == 0)
        rc = bstream_verify(src, c->has_key ? c->key : NULL, checksum, &res, err);
    rv_source_close(src);
    return rc;
}

/* --- WAL --- */

static bool wal_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 8 && n <= 64 && strspn(name, "0123456789ABCDEF") >= 8 &&
           strspn(name, "0123456789ABCDEFabcdefghijklmnopqrstuvwxyz._-") == n && name[0] != '.';
}

static int wal_key(char *out, size_t cap, const char *name, struct rv_error *err)
{
    if (!wal_name_ok(name))
        return rv_error_set(err, RV_EINVAL, false, "'%s' is not a WAL file name", name);
    snprintf(out, cap, "wal/%.8s/%s", name, name);
    return 0;
}

/* SHA-256 of a whole source (decoded). */
static int source_sha(uint8_t out[CRYPTO_SHA256_LEN], struct rv_source *src, struct rv_error *err)
{
    struct crypto_sha256_ctx h = {0};
    char *chunk = malloc(RV_BACKUP_CHUNK);
    int rc = chunk == NULL || crypto_sha256_init(&h) != 0
                 ? rv_error_set(err, RV_ENOMEM, false, "out of memory")
                 : 0;
    for (;;) {
        size_t n = 0;
        if (rc != 0 || (rc = rv_source_read(src, chunk, RV_BACKUP_CHUNK, &n, err)) != 0 || n == 0)
            break;
        crypto_sha256_update(&h, chunk, n);
    }
    if (rc == 0 && crypto_sha256_final(out, &h) != 0)
        rc = rv_error_set(err, RV_ECRYPTO, false, "sha-256 failed");
    crypto_sha256_release(&h);
    free(chunk);
    return rc;
}

struct fd_source {
    struct rv_source s;
    int fd;
};

static int fd_read(struct rv_source *s, void *buf, size_t cap, size_t *n, struct rv_error *err)
{
    struct fd_source *f = (struct fd_source *)s;
    ssize_t r;
    do
        r = read(f->fd, buf, cap);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return rv_error_set(err, RV_EIO, false, "read: %s", strerror(errno));
    *n = (size_t)r;
    return 0;
}

static void fd_close(struct rv_source *s)
{
    (void)s;
}

/* The archived copy has the same content as the local file. */
static int wal_same(bool *same, struct backup_ctx *c, const char *key, int fd, struct rv_error *err)
{
    struct rv_source *up = NULL, *dec = NULL;
    struct fd_source fs = {{fd_read, fd_close}, fd};
    uint8_t a[CRYPTO_SHA256_LEN], b[CRYPTO_SHA256_LEN];
    int rc = c->store->get(c->store, key, &up, err);
    *same = false;
    if (rc != 0)
        return rc;
    rc = bstream_decoder_new(&dec, up, c->has_key ? c->key : NULL, NULL, err);
    if (rc == 0)
        rc = source_sha(a, dec, err);
    rv_source_close(dec);
    if (rc == 0 && lseek(fd, 0, SEEK_SET) == 0)
        rc = source_sha(b, &fs.s, err);
    if (rc == 0)
        *same = memcmp(a, b, sizeof(a)) == 0;
    return rc;
}

int backup_wal_push(struct backup_ctx *c, const char *path, struct rv_error *err)
{
    const char *name = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    char key[128], at[32];
    struct rv_sink *down = NULL, *enc = NULL;
    struct fd_source fs = {{fd_read, fd_close}, -1};
    struct bstream_opts opts = {.key = c->has_key ? c->key : NULL};
    struct bstream_result res = {0};
    int64_t size = 0;
    int rc = wal_key(key, sizeof(key), name, err);
    if (rc != 0)
        return rc;
    fs.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fs.fd < 0)
        return rv_error_set(err, RV_EIO, false, "cannot open '%s': %s", path, strerror(errno));
    rc = c->store->stat(c->store, key, &size, err);
    if (rc == 0) {
        bool same = false;
        rc = wal_same(&same, c, key, fs.fd, err);
        if (rc == 0 && !same)
            rc = rv_error_set(err, RV_ECONFLICT, false,
                              "'%s' is archived already with different content: two servers "
                              "archive to one destination? (check the cluster's backup spec)",
                              key);
        if (rc == 0)
            log_info(COMP, "wal-push: '%s' is archived already", name);
        goto out;
    }
    if (rc != RV_ENOTFOUND)
        goto out;
    rv_error_clear(err);
    rc = c->store->put(c->store, key, &down, err);
    if (rc != 0)
        goto out;
    rc = bstream_encoder_new(&enc, down, &opts, &res, err);
    if (rc != 0) {
        rv_sink_abort(down);
        goto out;
    }
    rc = objstore_copy(enc, &fs.s, NULL, err);
    if (rc != 0)
        goto out;
    backup_time_format(at, backup_now_ms());
    if (strstr(name, ".") == NULL) {
        struct rv_error e2 = {0};
        backup_db_state_set(c->db, "wal_last_segment", name, &e2);
        backup_db_state_set(c->db, "wal_last_archived_at", at, &e2);
    }
out:
    close(fs.fd);
    return rc;
}

static bool restoring(struct backup_ctx *c)
{
    char path[RV_PG_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/recovery.signal", c->cfg->pg.data_dir);
    return access(path, F_OK) == 0;
}

int backup_wal_fetch(struct backup_ctx *c, const char *file, const char *path, struct rv_error *err)
{
    char key[128], tmp[RV_PG_PATH_MAX + 32], loc[RV_PG_PATH_MAX + 64];
    struct objstore *store = c->store, *own_store = NULL;
    const uint8_t *key_bytes = c->has_key ? c->key : NULL;
    uint8_t rkey[BSTREAM_KEY_LEN];
    struct rv_source *up = NULL, *dec = NULL;
    int fd = -1, rc = wal_key(key, sizeof(key), file, err);
    json_t *r = json_object_get(c->config, "restore");
    if (rc != 0)
        return rc;
    if (json_is_object(r) && (restoring(c) || store == NULL)) {
        const char *k = json_string_value(json_object_get(r, "encryption_key"));
        rc =
            backup_store_open(&own_store, loc, sizeof(loc), json_object_get(r, "destination"), err);
        if (rc == 0 && k != NULL)
            rc = bstream_key_parse(rkey, k, err);
        if (rc != 0)
            goto out;
        store = own_store;
        key_bytes = k != NULL ? rkey : NULL;
    }
    if (store == NULL) {
        rc = rv_error_set(err, RV_ENOTFOUND, false, "no backup destination configured");
        goto out;
    }
    rc = store->get(store, key, &up, err);
    if (rc != 0)
        goto out;
    rc = bstream_decoder_new(&dec, up, key_bytes, NULL, err);
    up = NULL; /* the decoder owns it now, also when it failed */
    if (rc != 0)
        goto out;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.reeve-tmp", path) >= sizeof(tmp)) {
        rc = rv_error_set(err, RV_ELIMIT, false, "path '%s' is too long", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    char *chunk = malloc(RV_BACKUP_CHUNK);
    if (chunk == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n = 0;
        rc = rv_source_read(dec, chunk, RV_BACKUP_CHUNK, &n, err);
        if (rc != 0 || n == 0)
            break;
        if (write(fd, chunk, n) != (ssize_t)n) {
            rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
    }
    free(chunk);
    if (rc == 0 && fsync(fd) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot write '%s': %s", tmp, strerror(errno));
    fd = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = rv_error_set(err, RV_EIO, false, "cannot rename to '%s': %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    rv_source_close(dec);
    rv_source_close(up);
    if (own_store != NULL)
        own_store->free(own_store);
    crypto_wipe(rkey, sizeof(rkey));
    return rc;
}

/* --- retention --- */

struct kept {
    char id[32];
    int64_t started;
    bool succeeded;
    bool full;
    uint64_t start_lsn;
};

static int64_t parse_time(const char *s)
{
    struct tm t = {0};
    int ms = 0;
    if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &t.tm_year, &t.tm_mon, &t.tm_mday,
                            &t.tm_hour, &t.tm_min, &t.tm_sec, &ms) < 6)
        return 0;
    t.tm_year -= 1900;
    t.tm_mon -= 1;
    return (int64_t)timegm(&t) * 1000 + ms;
}

static int manifest_read(struct kept *k, struct backup_ctx *c, const char *key,
                         struct rv_error *err)
{
    struct rv_source *src = NULL;
    char buf[RV_BACKUP_MANIFEST_MAX + 1];
    size_t len = 0;
    int rc = c->store->get(c->store, key, &src, err);
    while (rc == 0) {
        size_t n = 0;
        rc = rv_source_read(src, buf + len, sizeof(buf) - 1 - len, &n, err);
        if (rc != 0 || n == 0)
            break;
        len += n;
        if (len == sizeof(buf) - 1)
            break;
    }
    rv_source_close(src);
    if (rc != 0)
        return rc;
    buf[len] = '\0';
    json_t *m = json_loads(buf, 0, NULL);
    const char *lsn = json_string_value(json_object_get(m, "start_lsn"));
    k->started = parse_time(json_string_value(json_object_get(m, "started_at")));
    k->succeeded = json_is_string(json_object_get(m, "status")) &&
                   strcmp(json_string_value(json_object_get(m, "status")), "succeeded") == 0;
    k->full = json_is_string(json_object_get(m, "type")) &&
              strcmp(json_string_value(json_object_get(m, "type")), "full") == 0;
    k->start_lsn = 0;
    if (lsn != NULL)
        pg_lsn_parse(&k->start_lsn, lsn);
    json_decref(m);
    return 0;
}

static int remove_prefix(struct backup_ctx *c, const char *prefix, size_t *deleted,
                         struct rv_error *err)
{
    struct objstore_entry *e = NULL;
    size_t n = 0;
    int rc = c->store->list(c->store, prefix, &e, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* The manifest first: a backup without it no longer counts. */
        size_t j = n - 1 - i;
        rc = c->store->remove(c->store, e[j].key, err);
        if (rc == 0)
            (*deleted)++;
    }
    objstore_entries_free(e, n);
    return rc;
}

int backup_retention(struct backup_ctx *c, int64_t now, size_t *deleted_out, struct rv_error *err)
{
    struct objstore_entry *e = NULL;
    struct kept *ks = NULL;
    size_t n = 0, nk = 0, deleted = 0;
    int64_t days = json_integer_value(json_object_get(c->backup, "retention_days"));
    int rc;
    if (deleted_out != NULL)
        *deleted_out = 0;
    if (c->store == NULL || days <= 0)
        return 0;
    int64_t cutoff = now - days * 86400 * 1000;
    rc = c->store->list(c->store, "base/", &e, &n, err);
    if (rc != 0)
        return rc;
    ks = calloc(n + 1, sizeof(*ks));
    if (ks == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = e[i].key + 5;
        const char *slash = strchr(id, '/');
        if (slash == NULL || strcmp(slash, "/manifest.json") != 0 || slash - id >= 32)
            continue;
        memcpy(ks[nk].id, id, (size_t)(slash - id));
        if (manifest_read(&ks[nk], c, e[i].key, err) == 0)
            nk++;
    }
    /* A data object without a manifest is a backup that never completed (its
     * process was killed between the two): gone once past retention, by the
     * time in its id. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t klen = strlen(e[i].key);
        struct tm t = {0};
        if (klen < 10 || strcmp(e[i].key + klen - 5, "/data") != 0 ||
            (i + 1 < n && strncmp(e[i + 1].key, e[i].key, klen - 4) == 0 &&
             strcmp(e[i + 1].key + klen - 4, "manifest.json") == 0) ||
            strptime(e[i].key + 5, "%Y%m%dT%H%M%SZ", &t) == NULL ||
            (int64_t)timegm(&t) * 1000 >= cutoff)
            continue;
        log_info(COMP, "retention: deleting '%s' (an incomplete backup)", e[i].key);
        rc = c->store->remove(c->store, e[i].key, err);
        if (rc == 0)
            deleted++;
    }
    /* The newest succeeded full backup, kept whatever its age. */
    int newest = -1;
    for (size_t i = 0; i < nk; i++)
        if (ks[i].succeeded && ks[i].full && (newest < 0 || ks[i].started > ks[newest].started))
            newest = (int)i;
    uint64_t oldest_lsn = UINT64_MAX;
    for (size_t i = 0; i < nk && rc == 0; i++) {
        char prefix[48];
        bool keep = (int)i == newest || ks[i].started >= cutoff;
        if (keep) {
            if (ks[i].succeeded && ks[i].full && ks[i].start_lsn < oldest_lsn)
                oldest_lsn = ks[i].start_lsn;
            continue;
        }
        snprintf(prefix, sizeof(prefix), "base/%s/", ks[i].id);
        log_info(COMP, "retention: deleting backup %s (older than %" PRId64 " days)", ks[i].id,
                 days);
        rc = remove_prefix(c, prefix, &deleted, err);
    }
    objstore_entries_free(e, n);
    e = NULL;
    n = 0;
    if (rc != 0 || oldest_lsn == UINT64_MAX || oldest_lsn == 0)
        goto out;
    /* WAL segments entirely before the oldest kept backup's start. Segment
     * names end in 8 hex digits of log id and 8 of segment (16 MiB
     * segments: the LSN's top 32 bits, and bits 24-31). */
    char first[17];
    snprintf(first, sizeof(first), "%08" PRIX64 "%08" PRIX64, oldest_lsn >> 32,
             (oldest_lsn & 0xffffffffu) >> 24);
    rc = c->store->list(c->store, "wal/", &e, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = strrchr(e[i].key, '/') + 1;
        if (strlen(name) != 24 || strspn(name, "0123456789ABCDEF") != 24)
            continue; /* history and backup-label files stay */
        if (strcmp(name + 8, first) < 0) {
            rc = c->store->remove(c->store, e[i].key, err);
            if (rc == 0)
                deleted++;
        }
    }
out:
    objstore_entries_free(e, n);
    free(ks);
    if (deleted_out != NULL)
        *deleted_out = deleted;
    if (deleted > 0)
        log_info(COMP, "retention: %zu objects deleted", deleted);
    return rc;
}

/* --- archive_command --- */

static bool path_plain(const char *s)
{
    return s[0] == '/' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789/._-+") == strlen(s);
}

int backup_archive_command(char *out, size_t cap, const char *exe, const char *cfg_path,
                           struct rv_error *err)
{
    if (!path_plain(exe) || !path_plain(cfg_path))
        return rv_error_set(err, RV_EINVAL, false,
                            "cannot build archive_command: '%s' and '%s' must be absolute paths "
                            "of letters, digits and / . _ - +",
                            exe, cfg_path);
    if ((size_t)snprintf(out, cap, "%s wal-push -c %s %%p", exe, cfg_path) >= cap)
        return rv_error_set(err, RV_ELIMIT, false, "archive_command too long");
    return 0;
}
