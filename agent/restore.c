/* restore.c - restore a PostgreSQL node from a backup (see restore.h).
 *
 * The steps of restore_run(): read the manifest and refuse what cannot work
 * (an unfinished or incremental backup, a missing key, a target before the
 * consistency point); check the data directory is absent or empty; stream
 * the base object through the decoder into `tar -x` run as the server's OS
 * user; adopt the directory (engine_pg writes reeve.conf and pg_hba.conf);
 * write reeve-recovery.conf (included from postgresql.conf with
 * include_if_exists, so the engine's own rewriting of reeve.conf never
 * touches it) and recovery.signal; start the server and wait for it to
 * promote; read the server log when it stops instead.
 */
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "child.h"
#include "fsutil.h"
#include "log.h"

#define COMPONENT "restore"
#define RECOVERY_CONF "reeve-recovery.conf"
/* In the data directory from before extraction until the restore succeeded:
 * what a crashed restore leaves behind is recognised and started over. */
#define MARKER "reeve-restore-incomplete"
#define INCLUDE_LINE "include_if_exists '" RECOVERY_CONF "'\n"
/* PostgreSQL 15's words when the archive ends before the target. */
#define PG_TARGET_NOT_REACHED "recovery ended before configured recovery target was reached"
#define PG_TARGET_TOO_EARLY "requested recovery stop point is before consistent recovery point"

extern char **environ;

/* --- small helpers --- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Paths written into a configuration string or a shell command line. */
static bool plain_path(const char *s)
{
    if (!s || s[0] != '/')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '"' || c == '\\' || c == '$' || c == '`' ||
            c == ' ' || c == '%' || c == ';' || c == '&' || c == '|')
            return false;
    }
    return true;
}

static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RV_RESTORE_ID_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool canceled(const struct restore_opts *o, struct rv_error *err)
{
    if (!o->cancel || !atomic_load(o->cancel))
        return false;
    rv_error_set(err, RV_ECANCELED, false, "restore: canceled");
    return true;
}

/* --- time --- */

int restore_time_parse(int64_t *ms, const char *s, struct rv_error *err)
{
    struct tm tm = {0};
    int consumed = 0;
    int64_t frac = 0;
    if (!s ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed != 19)
        goto bad;
    const char *p = s + consumed;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        }
        if (digits == 0)
            goto bad;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "z") == 0 || strcmp(p, "+00:00") == 0))
        goto bad;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        goto bad;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        goto bad;
    *ms = (int64_t)t * 1000 + frac;
    return 0;
bad:
    return rv_error_set(err, RV_EINVAL, false,
                        "restore: time '%.64s' is not RFC 3339 in UTC; write it like "
                        "2026-11-20T10:00:00.000Z",
                        s ? s : "");
}

/* "yyyy-mm-dd<sep>hh:mm:ss.mmm<zone>"; 24 to 26 bytes for any 4-digit year. */
static void format_utc(char out[RV_RESTORE_TIME_MAX + 1], int64_t ms, char sep, const char *zone)
{
    char tmp[128];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d%c%02d:%02d:%02d.%03d%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, sep, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000),
             zone);
    snprintf(out, RV_RESTORE_TIME_MAX + 1, "%.*s", RV_RESTORE_TIME_MAX, tmp);
}

void restore_time_format(char out[RV_RESTORE_TIME_MAX + 1], int64_t ms)
{
    format_utc(out, ms, 'T', "Z");
}

/* --- the manifest --- */

static int read_object(struct buf *out, struct objstore *o, const char *key, size_t max,
                       struct rv_error *err)
{
    struct rv_source *src = NULL;
    char chunk[8192];
    int rc = o->get(o, key, &src, err);
    while (rc == 0) {
        size_t n = 0;
        if ((rc = rv_source_read(src, chunk, sizeof chunk, &n, err)) != 0 || n == 0)
            break;
        if (out->len + n > max) {
            rc = rv_error_set(err, RV_ELIMIT, false, "restore: '%s' is larger than %zu bytes", key,
                              max);
            break;
        }
        if (buf_append(out, chunk, n) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
    }
    rv_source_close(src);
    return rc;
}

static const char *jstr(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static int copy_field(char *dst, size_t cap, const json_t *o, const char *name, bool required)
{
    const char *v = jstr(o, name);
    if (!v)
        return required ? -1 : 0;
    if (strlen(v) >= cap)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int manifest_parse(struct restore_manifest *m, const char *id, const char *text,
                          struct rv_error *err)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    const char *bad = NULL;
    memset(m, 0, sizeof *m);
    m->size = -1;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return rv_error_set(err, RV_EPARSE, false,
                            "restore: manifest of backup '%s' is not a JSON object", id);
    }
    const json_t *sz = json_object_get(j, "size");
    if (copy_field(m->backup_id, sizeof m->backup_id, j, "backup_id", true) != 0 ||
        strcmp(m->backup_id, id) != 0)
        bad = "backup_id";
    else if (copy_field(m->type, sizeof m->type, j, "type", true) != 0)
        bad = "type";
    else if (copy_field(m->status, sizeof m->status, j, "status", true) != 0)
        bad = "status";
    else if (copy_field(m->checksum, sizeof m->checksum, j, "checksum",
                        strcmp(m->status, "succeeded") == 0) != 0 ||
             (m->checksum[0] && strspn(m->checksum, "0123456789abcdef") != 64))
        bad = "checksum";
    else if (restore_time_parse(&m->started_ms, jstr(j, "started_at"), NULL) != 0)
        bad = "started_at";
    else if (strcmp(m->status, "succeeded") == 0 &&
             restore_time_parse(&m->ended_ms, jstr(j, "ended_at"), NULL) != 0)
        bad = "ended_at";
    else if (jstr(j, "start_lsn") && pg_lsn_parse(&m->start_lsn, jstr(j, "start_lsn")) != 0)
        bad = "start_lsn";
    else if (jstr(j, "end_lsn") && pg_lsn_parse(&m->end_lsn, jstr(j, "end_lsn")) != 0)
        bad = "end_lsn";
    if (!bad) {
        m->encrypted = json_is_true(json_object_get(j, "encrypted"));
        if (json_is_integer(sz))
            m->size = (int64_t)json_integer_value(sz);
        const json_t *tl = json_object_get(j, "timeline");
        if (json_is_integer(tl) && json_integer_value(tl) > 0 &&
            json_integer_value(tl) <= (json_int_t)UINT32_MAX)
            m->timeline = (uint32_t)json_integer_value(tl);
    }
    json_decref(j);
    if (bad)
        return rv_error_set(err, RV_EPARSE, false,
                            "restore: manifest of backup '%s': field '%s' is missing or malformed",
                            id, bad);
    return 0;
}

int restore_manifest_load(struct restore_manifest *m, struct objstore *o, const char *backup_id,
                          struct rv_error *err)
{
    char key[RV_OBJSTORE_KEY_MAX + 1];
    struct buf b = BUF_INIT;
    int rc = 0;
    if (!valid_id(backup_id))
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: backup id '%.80s' is malformed (expected like "
                            "20261121T080501Z-3fa9c2d1)",
                            backup_id);
    snprintf(key, sizeof key, "base/%s/manifest.json", backup_id);
    rc = read_object(&b, o, key, RV_RESTORE_MANIFEST_MAX, err);
    if (rc == RV_ENOTFOUND)
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "restore: backup '%s' not found (no '%s' at the destination); list the "
                          "backups and pick another",
                          backup_id, key);
    if (rc == 0)
        rc = manifest_parse(m, backup_id, b.data ? b.data : "", err);
    buf_release(&b);
    return rc;
}

int restore_find_backup(struct restore_manifest *m, struct objstore *o, bool has_target,
                        int64_t target_ms, struct rv_error *err)
{
    static const char suffix[] = "/manifest.json";
    struct objstore_entry *ents = NULL;
    size_t n = 0;
    int rc = o->list(o, "base/", &ents, &n, err);
    if (rc != 0)
        return rc;
    rc = RV_ENOTFOUND;
    /* Ids start with their UTC time, so key order is age order. */
    for (size_t i = n; i-- > 0 && rc == RV_ENOTFOUND;) {
        const char *k = ents[i].key + 5;
        size_t len = strlen(k);
        char id[RV_RESTORE_ID_MAX + 1];
        if (len <= sizeof suffix - 1 || strcmp(k + len - (sizeof suffix - 1), suffix) != 0 ||
            len - (sizeof suffix - 1) > RV_RESTORE_ID_MAX)
            continue;
        memcpy(id, k, len - (sizeof suffix - 1));
        id[len - (sizeof suffix - 1)] = '\0';
        struct rv_error e2 = {0};
        if (restore_manifest_load(m, o, id, &e2) != 0) {
            log_warn(COMPONENT, "skipping backup '%s': %s", id, e2.msg);
            continue;
        }
        if (strcmp(m->status, "succeeded") == 0 && strcmp(m->type, "full") == 0 &&
            (!has_target || m->ended_ms <= target_ms))
            rc = 0;
    }
    objstore_entries_free(ents, n);
    if (rc == RV_ENOTFOUND) {
        char t[RV_RESTORE_TIME_MAX + 1] = "";
        if (has_target)
            restore_time_format(t, target_ms);
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "restore: no succeeded full backup%s%s at the destination",
                          has_target ? " ended at or before " : "", t);
    }
    return rc;
}

int restore_command_build(char *out, size_t cap, const char *agent_bin, const char *config_path,
                          struct rv_error *err)
{
    if (!plain_path(agent_bin) || !plain_path(config_path))
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: the agent binary and configuration paths must be absolute "
                            "and free of spaces, quotes and shell characters");
    if (snprintf(out, cap, "%s wal-fetch -c %s %%f %%p", agent_bin, config_path) >= (int)cap)
        return rv_error_set(err, RV_ELIMIT, false, "restore: restore_command is too long");
    return 0;
}

/* --- files, as the server's OS user --- */

/* Write path atomically (lib/fsutil), 0600, owned by the server's user. */
static int write_file(const struct pg_engine *e, const char *path, const char *data,
                      struct rv_error *err)
{
    struct fs_owner o = {e->uid, e->gid};
    return fs_write_atomic(path, data, strlen(data), 0600, e->run_as ? &o : NULL, "restore", err);
}

static int data_path(char *dst, size_t cap, const struct pg_engine *e, const char *name,
                     struct rv_error *err)
{
    if (snprintf(dst, cap, "%s/%s", e->data_dir, name) >= (int)cap)
        return rv_error_set(err, RV_ELIMIT, false, "restore: path '%s/%s' is too long", e->data_dir,
                            name);
    return 0;
}

/* Remove everything below the directory open as dfd (not following links). */
static int remove_below(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    int rc = 0;
    if (!d) {
        close(dfd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = -1;
            continue;
        }
        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || depth > 64 || remove_below(sub, depth + 1) != 0 ||
            unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) != 0) {
            if (sub >= 0 && depth > 64)
                close(sub);
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* Empty dir (keep it); remove it too when remove_dir. */
static void wipe_dir(const char *dir, bool remove_dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    if (remove_below(fd, 0) != 0)
        log_error(COMPONENT, "cannot empty '%s' completely; remove it by hand", dir);
    if (remove_dir)
        rmdir(dir);
}

/* Absent: create it (0700, the server's user). Present: it must be empty,
 * or hold an unfinished restore (its marker), which is removed. Then the
 * marker is written. */
static int prepare_data_dir(const struct pg_engine *e, bool *created, struct rv_error *err)
{
    char marker[RV_PG_PATH_MAX + 32];
    int rc = data_path(marker, sizeof marker, e, MARKER, err);
    *created = false;
    if (rc != 0)
        return rc;
    if (access(marker, F_OK) == 0) {
        log_warn(COMPONENT, "'%s' holds an unfinished restore: starting over", e->data_dir);
        wipe_dir(e->data_dir, false);
    }
    DIR *d = opendir(e->data_dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                rc = rv_error_set(err, RV_EEXISTS, false,
                                  "restore: data directory '%s' is not empty; a restore needs an "
                                  "absent or empty directory",
                                  e->data_dir);
        closedir(d);
        if (rc == 0 && chmod(e->data_dir, 0700) != 0)
            rc = rv_error_set(err, RV_EIO, false, "restore: cannot chmod '%s': %s", e->data_dir,
                              strerror(errno));
        if (rc == 0 && e->run_as && chown(e->data_dir, e->uid, e->gid) != 0)
            rc = rv_error_set(err, RV_EIO, false, "restore: cannot chown '%s': %s", e->data_dir,
                              strerror(errno));
    } else if (errno != ENOENT) {
        rc = rv_error_set(err, RV_EIO, false, "restore: cannot open '%s': %s", e->data_dir,
                          strerror(errno));
    } else if (mkdir(e->data_dir, 0700) != 0) {
        rc = rv_error_set(err, RV_EIO, false, "restore: cannot create '%s': %s", e->data_dir,
                          strerror(errno));
    } else {
        *created = true;
        if (e->run_as && chown(e->data_dir, e->uid, e->gid) != 0)
            rc = rv_error_set(err, RV_EIO, false, "restore: cannot chown '%s': %s", e->data_dir,
                              strerror(errno));
    }
    if (rc == 0)
        rc = write_file(e, marker, "a restore into this directory has not finished\n", err);
    return rc;
}

/* --- child processes --- */

/* Without libpq and locale variables: messages in English, no stray PGHOST
 * redirecting a tool. Free with free(). */
static char **tool_env(void)
{
    static const char *const drop[] = {"PG", "LC_", "LANG", "HOME=", NULL};
    static const char *const add[] = {"LC_ALL=C", "HOME=/", NULL};
    return child_env(drop, add);
}

/* A tool run as the server's user (lib/child) whose input the caller
 * streams: its stdout and stderr go to a memory file, so it never blocks
 * on output while we write its input. */
struct tool {
    struct child c; /* c.in: the write end of its stdin */
    int log;        /* memfd holding its stdout and stderr */
};

static int tool_start(struct tool *t, const struct pg_engine *e, char *const argv[],
                      struct rv_error *err)
{
    char **envp = tool_env();
    int rc = 0;
    t->c = (struct child)CHILD_INIT;
    t->log = memfd_create("reeve-restore-out", MFD_CLOEXEC);
    if (t->log < 0 || !envp) {
        rc = rv_error_set(err, RV_ENOMEM, false, "restore: cannot set up '%s'", argv[0]);
        goto out;
    }
    struct child_spec s = {.argv = (const char *const *)argv,
                           .envp = envp,
                           .run_as = e->run_as,
                           .uid = e->uid,
                           .gid = e->gid,
                           .in = CHILD_IO_PIPE,
                           .out = CHILD_IO_FD,
                           .out_fd = t->log,
                           .err = CHILD_IO_FD,
                           .err_fd = t->log,
                           .label = "restore"};
    rc = child_spawn(&t->c, &s, -1, err);
out:
    free(envp);
    if (rc != 0 && t->log >= 0) {
        close(t->log);
        t->log = -1;
    }
    return rc;
}

/* The end of the tool's output on one line. */
static void tool_output(const struct tool *t, char *dst, size_t cap)
{
    dst[0] = '\0';
    off_t end = lseek(t->log, 0, SEEK_END);
    if (end <= 0)
        return;
    off_t start = end > (off_t)(cap - 1) ? end - (off_t)(cap - 1) : 0;
    ssize_t r = pread(t->log, dst, (size_t)(end - start), start);
    if (r < 0)
        r = 0;
    dst[r] = '\0';
    for (ssize_t i = r - 1; i >= 0 && (dst[i] == '\n' || dst[i] == ' '); i--)
        dst[i] = '\0';
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

/* Close its input and wait until deadline (monotonic ms); past it the
 * tool is killed. *code: its exit status, -1 when killed. */
static int tool_wait(struct tool *t, int64_t deadline, int *code, const char *what,
                     struct rv_error *err)
{
    int status = 0;
    if (t->c.in >= 0) {
        close(t->c.in);
        t->c.in = -1;
    }
    int why = child_reap(&status, &t->c, deadline, NULL);
    *code = why != 0 ? -1 : child_exit_code(status);
    if (why == RV_ETIMEOUT)
        return rv_error_set(err, RV_ETIMEOUT, true, "restore: '%s' did not finish in time (killed)",
                            what);
    if (why != 0)
        return rv_error_set(err, RV_EIO, false, "restore: waitpid: %s", strerror(errno));
    return 0;
}

static void tool_release(struct tool *t)
{
    child_release(&t->c);
    if (t->log >= 0)
        close(t->log);
    t->log = -1;
}

/* Run a server tool (bin_dir/name) to its end; a non-zero exit is an error
 * naming it with its output. */
static int run_pg_tool(const struct pg_engine *e, const char *const *args, int timeout_ms,
                       struct rv_error *err)
{
    char exe[RV_PG_PATH_MAX + 64];
    const char *argv[24];
    size_t n = 0;
    struct child_result r = {0};
    char **envp = tool_env();
    int rc = 0;
    snprintf(exe, sizeof exe, "%s/%s", e->bin_dir, args[0]);
    argv[n++] = exe;
    for (size_t i = 1; args[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (!envp)
        return rv_error_set(err, RV_ENOMEM, false, "restore: cannot set up '%s'", args[0]);
    struct child_spec s = {.argv = argv,
                           .envp = envp,
                           .run_as = e->run_as,
                           .uid = e->uid,
                           .gid = e->gid,
                           .label = "restore"};
    struct child_opts o = {.timeout_ms = timeout_ms, .output_max = RV_PG_OUTPUT_MAX};
    rc = child_run(&r, &s, 1, &o, err);
    if (rc == 0 && r.why != 0)
        rc = rv_error_set(err, RV_ETIMEOUT, true, "restore: '%s' did not finish in time (killed)",
                          args[0]);
    if (rc == 0 && r.exit_code[0] != 0) {
        char tail[320];
        child_tail_line(tail, sizeof tail, &r.out);
        rc = rv_error_set(err, RV_ECHILD, false, "restore: '%s' failed (exit %d): %s", args[0],
                          r.exit_code[0], tail);
    }
    child_result_release(&r);
    free(envp);
    return rc;
}

/* --- extraction --- */

/* Counts the stored bytes the decoder reads. */
struct counting_source {
    struct rv_source base;
    struct rv_source *up;
    uint64_t *count;
};

static int counting_read(struct rv_source *s, void *buf, size_t cap, size_t *n,
                         struct rv_error *err)
{
    struct counting_source *c = (struct counting_source *)s;
    int rc = rv_source_read(c->up, buf, cap, n, err);
    if (rc == 0)
        *c->count += *n;
    return rc;
}

static void counting_close(struct rv_source *s)
{
    struct counting_source *c = (struct counting_source *)s;
    rv_source_close(c->up);
    free(c);
}

/* Open key decoded; *stored counts the encoded bytes read. */
static int open_decoded(struct rv_source **out, struct objstore *o, const char *key,
                        const uint8_t *bkey, const char *sha256, uint64_t *stored,
                        struct rv_error *err)
{
    struct rv_source *raw = NULL;
    int rc = o->get(o, key, &raw, err);
    if (rc != 0)
        return rc;
    struct counting_source *c = calloc(1, sizeof *c);
    if (!c) {
        rv_source_close(raw);
        return rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
    }
    c->base.read = counting_read;
    c->base.close = counting_close;
    c->up = raw;
    c->count = stored;
    return bstream_decoder_new(out, &c->base, bkey, sha256, err);
}

/* Write all of data to fd before deadline; EPIPE means tar has gone. */
static int write_all(int fd, const char *data, size_t len, int64_t deadline, bool *gone,
                     struct rv_error *err)
{
    while (len > 0) {
        int64_t left = deadline - child_now_ms();
        if (left <= 0)
            return rv_error_set(err, RV_ETIMEOUT, true,
                                "restore: extracting the backup did not finish in time");
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (pr <= 0)
            continue;
        ssize_t w = write(fd, data, len);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0) {
            *gone = true;
            return 0;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static const char *find_tar(void)
{
    static const char *const paths[] = {"/usr/bin/tar", "/bin/tar"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* The decoder's RV_EINTEGRITY said for this backup. */
static int integrity_error(const struct restore_manifest *m, struct rv_error *err)
{
    char msg[RV_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    if (strstr(msg, " key"))
        return rv_error_set(err, RV_EINTEGRITY, false,
                            "restore: backup '%s' cannot be decrypted (%s); give the key it was "
                            "made with",
                            m->backup_id, msg);
    return rv_error_set(err, RV_EINTEGRITY, false,
                        "restore: backup '%s' is damaged (%s); it cannot be restored: restore "
                        "another backup",
                        m->backup_id, msg);
}

/* Stream base/<id>/data through the decoder into tar -x in the data dir. */
static int extract(const struct pg_engine *e, const struct restore_opts *o,
                   const struct restore_manifest *m, struct restore_result *res,
                   struct rv_error *err)
{
    char key[RV_OBJSTORE_KEY_MAX + 1];
    struct rv_source *src = NULL;
    struct tool t = {CHILD_INIT, -1};
    char *buf = NULL;
    bool gone = false;
    int code = 0, rc = 0;
    int64_t deadline = child_now_ms() + RV_RESTORE_EXTRACT_TIMEOUT_MS;
    int64_t next_log = child_now_ms() + RV_RESTORE_PROGRESS_MS;
    const char *tar = find_tar();
    if (!tar)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "restore: 'tar' not found in /usr/bin or /bin; install it");
    snprintf(key, sizeof key, "base/%s/data", m->backup_id);
    buf = malloc(RV_RESTORE_COPY_BUF);
    if (!buf)
        return rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
    rc = open_decoded(&src, o->store, key, o->key, m->checksum, &res->stored_bytes, err);
    if (rc == RV_ENOTFOUND)
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "restore: backup '%s' has a manifest but no data object '%s'; it was "
                          "deleted or never written; restore another backup",
                          m->backup_id, key);
    if (rc != 0)
        goto out;
    char *const argv[] = {(char *)tar,  (char *)"-x",        (char *)"-f", (char *)"-",
                          (char *)"-C", (char *)e->data_dir, NULL};
    if ((rc = tool_start(&t, e, argv, err)) != 0)
        goto out;
    log_info(COMPONENT, "extracting backup '%s' into '%s'", m->backup_id, e->data_dir);
    for (;;) {
        size_t n = 0;
        if ((rc = rv_source_read(src, buf, RV_RESTORE_COPY_BUF, &n, err)) != 0 || n == 0)
            break;
        res->raw_bytes += n;
        /* Every chunk is checked before its bytes come out of the decoder,
         * so tar stopping early is tar's own failure (a full disk, say): no
         * need to read the rest of the object to explain it. */
        if ((rc = write_all(t.c.in, buf, n, deadline, &gone, err)) != 0 || gone)
            break;
        if (canceled(o, err)) {
            rc = RV_ECANCELED;
            break;
        }
        if (child_now_ms() >= next_log) {
            log_info(COMPONENT, "backup '%s': %.1f MiB extracted", m->backup_id,
                     (double)res->raw_bytes / (1024.0 * 1024.0));
            next_log = child_now_ms() + RV_RESTORE_PROGRESS_MS;
        }
    }
    if (rc == 0 &&
        (rc = tool_wait(&t, child_now_ms() + RV_RESTORE_TOOL_TIMEOUT_MS, &code, "tar", err)) == 0 &&
        code != 0) {
        char tail[320];
        tool_output(&t, tail, sizeof tail);
        rc = rv_error_set(err, RV_ECHILD, false,
                          "restore: 'tar' failed extracting backup '%s' into '%s' (exit %d): %s",
                          m->backup_id, e->data_dir, code, tail);
    }
    /* tar exiting 0 before the end of its input has read the archive's end
     * marker: the rest of the object still has to pass the checks. */
    for (size_t n = 1; rc == 0 && gone && n > 0;)
        rc = rv_source_read(src, buf, RV_RESTORE_COPY_BUF, &n, err);
    if (rc == RV_EINTEGRITY)
        rc = integrity_error(m, err);
out:
    tool_release(&t);
    rv_source_close(src);
    free(buf);
    return rc;
}

/* --- recovery configuration --- */

/* recovery_target_time in PostgreSQL's input form, always UTC. */
static void pg_time(char out[RV_RESTORE_TIME_MAX + 1], int64_t ms)
{
    format_utc(out, ms, ' ', "+00");
}

static int write_recovery_conf(const struct pg_engine *e, const struct restore_opts *o,
                               struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    struct buf b = BUF_INIT;
    int rc = data_path(path, sizeof path, e, RECOVERY_CONF, err);
    if (rc != 0)
        return rc;
    rc = buf_puts(&b, "# " RECOVERY_CONF ": written by reeve-agent for a restore and removed\n"
                      "# once the server has promoted.\nrestore_command = ");
    if (rc == 0)
        rc = pg_conf_quote(&b, o->restore_command);
    if (rc == 0)
        rc = buf_puts(&b, "\nrecovery_target_timeline = 'latest'\n"
                          "recovery_target_action = 'promote'\n");
    if (rc == 0 && o->target == RESTORE_TARGET_IMMEDIATE)
        rc = buf_puts(&b, "recovery_target = 'immediate'\n");
    if (rc == 0 && o->target == RESTORE_TARGET_TIME) {
        char t[RV_RESTORE_TIME_MAX + 1];
        pg_time(t, o->target_ms);
        rc = buf_printf(&b, "recovery_target_time = '%s'\nrecovery_target_inclusive = %s\n", t,
                        o->exclusive ? "off" : "on");
    }
    if (rc != 0)
        rc = rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
    else
        rc = write_file(e, path, b.data, err);
    buf_release(&b);
    return rc;
}

/* postgresql.conf gets include_if_exists 'reeve-recovery.conf' (once), after
 * the engine's include of reeve.conf. */
static int include_recovery_conf(const struct pg_engine *e, struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    struct buf b = BUF_INIT;
    int rc = data_path(path, sizeof path, e, "postgresql.conf", err);
    if (rc != 0)
        return rc;
    rc = fs_read_file(&b, path, RV_PG_CONF_FILE_MAX, "restore", err);
    if (rc != 0 || strstr(b.data, INCLUDE_LINE))
        goto out;
    if (buf_puts(&b, "\n" INCLUDE_LINE) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
        goto out;
    }
    rc = write_file(e, path, b.data, err);
out:
    buf_release(&b);
    return rc;
}

static int configure_recovery(struct pg_engine *e, const struct restore_opts *o,
                              struct rv_error *err)
{
    char path[RV_PG_PATH_MAX + 32];
    int rc = pg_engine_adopt_restored(e, err);
    if (rc == 0)
        rc = write_recovery_conf(e, o, err);
    if (rc == 0)
        rc = include_recovery_conf(e, err);
    if (rc == 0)
        rc = data_path(path, sizeof path, e, "recovery.signal", err);
    if (rc == 0)
        rc = write_file(e, path, "", err);
    return rc;
}

/* --- the server --- */

static int connect_server(const struct pg_engine *e, PGconn **out, struct rv_error *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", e->port);
    const char *const k[] = {
        "host", "port", "user", "dbname", "connect_timeout", "application_name", NULL};
    const char *const v[] = {e->socket_dir,   port, e->superuser, "postgres", "2",
                             "reeve-restore", NULL};
    PGconn *c = PQconnectdbParams(k, v, 0);
    *out = NULL;
    if (!c)
        return rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        bool role = strstr(msg, "role \"") && strstr(msg, "does not exist");
        PQfinish(c);
        if (role)
            return rv_error_set(
                err, RV_EINVAL, false,
                "restore: the restored cluster has no role '%s' (engine.superuser); "
                "set engine.superuser to the backed-up cluster's superuser",
                e->superuser);
        return rv_error_set(err, RV_EUNAVAIL, true, "restore: cannot connect: %s", msg);
    }
    *out = c;
    return 0;
}

/* One row of text values from sql (NULL on error, message in err). */
static PGresult *query(PGconn *c, const char *sql, int nparams, const char *const *params,
                       struct rv_error *err)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    msg[strcspn(msg, "\n")] = '\0';
    rv_error_set(err, RV_EDB, false, "restore: query failed: %s", msg);
    PQclear(r);
    return NULL;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The server log from offset, cut to its last RV_RESTORE_LOG_TAIL_MAX. */
static char *read_log(const char *path, off_t from)
{
    off_t end = file_size(path);
    if (from > end) /* rotated or truncated meanwhile */
        from = 0;
    if (end - from > RV_RESTORE_LOG_TAIL_MAX)
        from = end - RV_RESTORE_LOG_TAIL_MAX;
    char *s = calloc(1, (size_t)(end - from) + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!s || fd < 0) {
        free(s);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    ssize_t r = pread(fd, s, (size_t)(end - from), from);
    close(fd);
    s[r > 0 ? r : 0] = '\0';
    return s;
}

/* The text after the last occurrence of key in log, up to the line end. */
static bool last_after(const char *log, const char *key, char *out, size_t cap)
{
    const char *hit = NULL;
    for (const char *p = log; (p = strstr(p, key)) != NULL; p++)
        hit = p;
    if (!hit)
        return false;
    hit += strlen(key);
    size_t n = strcspn(hit, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, hit, n);
    out[n] = '\0';
    return true;
}

/* The server stopped during recovery: say why, from its log. */
static int explain_stop(const struct pg_engine *e, const struct restore_opts *o, off_t log_from,
                        struct rv_error *err)
{
    char *log = read_log(e->log_file, log_from);
    char line[200] = "", reached[160] = "";
    int rc;
    if (log && strstr(log, PG_TARGET_NOT_REACHED)) {
        char target[RV_RESTORE_TIME_MAX + 1] = "";
        char what[200] = "";
        restore_time_format(target, o->target_ms);
        if (last_after(log, "last completed transaction was at log time ", reached, sizeof reached))
            snprintf(what, sizeof what, "the transaction committed at %s", reached);
        else if (last_after(log, "redo done at ", reached, sizeof reached))
            snprintf(what, sizeof what, "WAL position %.*s", (int)strcspn(reached, " "), reached);
        else
            snprintf(what, sizeof what, "the backup's consistency point");
        rc = rv_error_set(err, RV_EINVAL, false,
                          "restore: point in time %s is after the last archived WAL: recovery "
                          "reached only %s; choose an earlier time, or check that WAL archiving "
                          "works",
                          target, what);
    } else if (log && strstr(log, PG_TARGET_TOO_EARLY)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "restore: the point in time is before the backup's consistency point; "
                          "choose a later time or an older backup");
    } else {
        if (!log || !last_after(log, "FATAL:  ", line, sizeof line))
            if (!log || !last_after(log, "PANIC:  ", line, sizeof line))
                snprintf(line, sizeof line, "no reason in the log");
        rc = rv_error_set(err, RV_ECHILD, false,
                          "restore: the server stopped during recovery: %s; see '%s'", line,
                          e->log_file);
    }
    free(log);
    return rc;
}

/* The socket directory: created (0700, the server's user) when absent. */
static int socket_dir(const struct pg_engine *e, struct rv_error *err)
{
    if (mkdir(e->socket_dir, 0700) != 0) {
        if (errno == EEXIST)
            return 0;
        return rv_error_set(err, RV_EIO, false, "restore: cannot create '%s': %s", e->socket_dir,
                            strerror(errno));
    }
    if (e->run_as && chown(e->socket_dir, e->uid, e->gid) != 0)
        return rv_error_set(err, RV_EIO, false, "restore: cannot chown '%s': %s", e->socket_dir,
                            strerror(errno));
    return 0;
}

static int start_server(const struct pg_engine *e, const struct restore_opts *o, int64_t deadline,
                        struct rv_error *err)
{
    char secs[24];
    int rc = socket_dir(e, err);
    if (rc != 0)
        return rc;
    int64_t left = (deadline - child_now_ms()) / 1000;
    snprintf(secs, sizeof secs, "%" PRId64, left > 1 ? left : 1);
    const char *args[16] = {"pg_ctl",    "start", "-D", e->data_dir, "-l",
                            e->log_file, "-w",    "-t", secs,        "-s"};
    size_t n = 10;
    if (o->scratch) {
        args[n++] = "-o";
        args[n++] = "-c archive_mode=off -c shared_buffers=" RV_RESTORE_SCRATCH_SHARED_BUFFERS;
    }
    args[n] = NULL;
    return run_pg_tool(e, args, (int)(deadline - child_now_ms()) + 5000, err);
}

/* Poll until the server has left recovery; log the replayed position. */
static int wait_promoted(const struct pg_engine *e, const struct restore_opts *o, off_t log_from,
                         int64_t deadline, struct restore_result *res, struct rv_error *err)
{
    static const char q[] =
        "SELECT pg_is_in_recovery()::text, COALESCE(pg_last_wal_replay_lsn()::text, ''),"
        " COALESCE(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC',"
        "                  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')";
    int64_t next_log = 0;
    for (;;) {
        if (!pg_engine_running(e))
            return explain_stop(e, o, log_from, err);
        PGconn *c = NULL;
        struct rv_error ce = {0};
        int rc = connect_server(e, &c, &ce);
        if (rc == RV_EINVAL) {
            *err = ce;
            return rc;
        }
        PGresult *r = c ? query(c, q, 0, NULL, &ce) : NULL;
        bool done = false;
        if (r && PQntuples(r) == 1) {
            done = strcmp(PQgetvalue(r, 0, 0), "false") == 0;
            snprintf(res->recovered_to, sizeof res->recovered_to, "%s", PQgetvalue(r, 0, 2));
            if (!done && child_now_ms() >= next_log) {
                log_info(COMPONENT, "recovering: replayed up to %s, transactions up to %s",
                         PQgetvalue(r, 0, 1), res->recovered_to[0] ? res->recovered_to : "none");
                next_log = child_now_ms() + RV_RESTORE_PROGRESS_MS;
            }
        }
        PQclear(r);
        if (c)
            PQfinish(c);
        if (done)
            return 0;
        if (canceled(o, err))
            return RV_ECANCELED;
        if (child_now_ms() >= deadline)
            return rv_error_set(
                err, RV_ETIMEOUT, false, "restore: recovery did not finish within %d s; see '%s'",
                (o->timeout_ms ? o->timeout_ms : RV_RESTORE_RECOVERY_TIMEOUT_MS) / 1000,
                e->log_file);
        child_sleep_ms(200);
    }
}

/* The replication role gets this node's password (or is created). */
static int adopt_replication_role(const struct pg_engine *e, PGconn *c, struct rv_error *err)
{
    char *verifier = PQencryptPasswordConn(c, e->repl_password, e->repl_user, "scram-sha-256");
    char *ident = PQescapeIdentifier(c, e->repl_user, strlen(e->repl_user));
    char *lit = verifier ? PQescapeLiteral(c, verifier, strlen(verifier)) : NULL;
    struct buf sql = BUF_INIT;
    PGresult *r = NULL;
    int rc = 0;
    if (!verifier || !ident || !lit) {
        rc = rv_error_set(err, RV_EDB, false, "restore: cannot prepare the replication role");
        goto out;
    }
    const char *params[] = {e->repl_user};
    if (!(r = query(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params, err))) {
        rc = RV_EDB;
        goto out;
    }
    bool exists = PQntuples(r) == 1;
    if (buf_printf(&sql, "%s ROLE %s WITH LOGIN REPLICATION PASSWORD %s;",
                   exists ? "ALTER" : "CREATE", ident, lit) != 0 ||
        (!exists &&
         buf_printf(&sql,
                    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO %s;"
                    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO %s;"
                    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO %s;"
                    "GRANT EXECUTE ON FUNCTION "
                    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO %s;",
                    ident, ident, ident, ident) != 0)) {
        rc = rv_error_set(err, RV_ENOMEM, false, "restore: out of memory");
        goto out;
    }
    PQclear(r);
    r = PQexec(c, sql.data);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        msg[strcspn(msg, "\n")] = '\0';
        rc = rv_error_set(err, RV_EDB, false, "restore: cannot set up replication role '%s': %s",
                          e->repl_user, msg);
    }
out:
    PQclear(r);
    if (sql.data)
        explicit_bzero(sql.data, sql.cap);
    buf_release(&sql);
    PQfreemem(lit);
    PQfreemem(ident);
    PQfreemem(verifier);
    return rc;
}

/* After promotion: checkpoint (the new timeline becomes visible to
 * pg_rewind), this node's replication password, drop the recovery file. */
static int finish(struct pg_engine *e, const struct restore_opts *o, struct restore_result *res,
                  struct rv_error *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    char path[RV_PG_PATH_MAX + 32];
    struct pg_status st;
    int rc = connect_server(e, &c, err);
    if (rc == 0 && !(r = query(c, "CHECKPOINT", 0, NULL, err)))
        rc = RV_EDB;
    PQclear(r);
    if (rc == 0 && !o->scratch)
        rc = adopt_replication_role(e, c, err);
    if (c)
        PQfinish(c);
    const char *const drop[] = {RECOVERY_CONF, MARKER};
    for (size_t i = 0; rc == 0 && i < sizeof drop / sizeof drop[0]; i++) {
        rc = data_path(path, sizeof path, e, drop[i], err);
        if (rc == 0 && unlink(path) != 0 && errno != ENOENT)
            rc = rv_error_set(err, RV_EIO, false, "restore: cannot remove '%s': %s", path,
                              strerror(errno));
    }
    if (rc == 0)
        rc = pg_engine_status(e, 0, &st, err);
    if (rc == 0) {
        res->timeline = st.timeline;
        res->lsn = st.current_lsn;
    }
    return rc;
}

/* --- restore --- */

static int check_target(const struct restore_opts *o, const struct restore_manifest *m,
                        struct rv_error *err)
{
    if (strcmp(m->status, "succeeded") != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: backup '%s' is %s, not succeeded; restore another backup",
                            m->backup_id, m->status);
    if (strcmp(m->type, "full") != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: backup '%s' is %s; restore a full backup", m->backup_id,
                            m->type);
    if (m->encrypted && !o->key)
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: backup '%s' is encrypted; the restore needs its "
                            "encryption key",
                            m->backup_id);
    if (o->target == RESTORE_TARGET_TIME && o->target_ms < m->ended_ms) {
        char t[RV_RESTORE_TIME_MAX + 1], c[RV_RESTORE_TIME_MAX + 1];
        restore_time_format(t, o->target_ms);
        restore_time_format(c, m->ended_ms);
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: point in time %s is before backup '%s' became consistent "
                            "(%s); choose a later time or an older backup",
                            t, m->backup_id, c);
    }
    return 0;
}

int restore_run(struct pg_engine *e, const struct restore_opts *o, struct restore_result *res,
                struct rv_error *err)
{
    struct restore_result local;
    struct restore_manifest m;
    bool created = false;
    int64_t started = child_now_ms();
    int64_t deadline;
    off_t log_from;
    int rc = 0;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!o->store || !o->restore_command || !o->restore_command[0] ||
        strlen(o->restore_command) > RV_RESTORE_COMMAND_MAX || strpbrk(o->restore_command, "\n\r"))
        return rv_error_set(err, RV_EINVAL, false,
                            "restore: a store and a one-line restore_command are required");
    if (pg_engine_running(e))
        return rv_error_set(err, RV_EEXISTS, false,
                            "restore: a server is running in '%s'; stop it first", e->data_dir);
    if (o->backup_id)
        rc = restore_manifest_load(&m, o->store, o->backup_id, err);
    else
        rc = restore_find_backup(&m, o->store, o->target == RESTORE_TARGET_TIME, o->target_ms, err);
    if (rc != 0 || (rc = check_target(o, &m, err)) != 0)
        return rc;
    snprintf(res->backup_id, sizeof res->backup_id, "%s", m.backup_id);
    if ((rc = prepare_data_dir(e, &created, err)) != 0)
        return rc;
    if ((rc = extract(e, o, &m, res, err)) != 0 || (rc = configure_recovery(e, o, err)) != 0)
        goto out;
    if (canceled(o, err)) {
        rc = RV_ECANCELED;
        goto out;
    }
    log_info(COMPONENT, "backup '%s' extracted (%.1f MiB); starting recovery", m.backup_id,
             (double)res->raw_bytes / (1024.0 * 1024.0));
    deadline =
        child_now_ms() + (o->timeout_ms > 0 ? o->timeout_ms : RV_RESTORE_RECOVERY_TIMEOUT_MS);
    log_from = file_size(e->log_file);
    if ((rc = start_server(e, o, deadline, err)) != 0) {
        if (!pg_engine_running(e))
            rc = explain_stop(e, o, log_from, err);
        if (rc != RV_ETIMEOUT && pg_engine_running(e))
            rc = wait_promoted(e, o, log_from, deadline, res, err);
    } else {
        rc = wait_promoted(e, o, log_from, deadline, res, err);
    }
    if (rc == 0)
        rc = finish(e, o, res, err);
out:
    if (rc != 0) {
        struct rv_error se = {0};
        if (pg_engine_stop(e, PG_STOP_IMMEDIATE, &se) != 0)
            log_error(COMPONENT, "cannot stop the failed restore's server: %s", se.msg);
        if (!o->keep_failed)
            wipe_dir(e->data_dir, created);
    }
    res->duration_ms = child_now_ms() - started;
    if (rc == 0)
        log_info(COMPONENT, "restored backup '%s' in %" PRId64 " ms: primary on timeline %u",
                 m.backup_id, res->duration_ms, res->timeline);
    return rc;
}

/* --- scratch test restore --- */

static int free_port(int *port, struct rv_error *err)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        rc = rv_error_set(err, RV_EIO, true, "restore: cannot find a free port: %s",
                          strerror(errno));
    else
        *port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int scratch_checks(struct pg_engine *e, struct restore_test_result *res,
                          struct rv_error *err)
{
    PGconn *c = NULL;
    PGresult *r = NULL;
    bool checksums = false;
    int rc = connect_server(e, &c, err);
    if (rc == 0 &&
        !(r = query(c, "SELECT count(*)::text, current_setting('data_checksums') FROM pg_database",
                    0, NULL, err)))
        rc = RV_EDB;
    if (rc == 0) {
        res->databases = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        checksums = strcmp(PQgetvalue(r, 0, 1), "on") == 0;
    }
    PQclear(r);
    if (c)
        PQfinish(c);
    if (rc == 0 && res->databases < 1)
        rc = rv_error_set(err, RV_EINTEGRITY, false,
                          "restore: the restored server lists no "
                          "database");
    if (rc == 0)
        rc = pg_engine_stop(e, PG_STOP_FAST, err);
    if (rc == 0 && checksums) {
        const char *args[] = {"pg_checksums", "--check", "-D", e->data_dir, NULL};
        rc = run_pg_tool(e, args, RV_RESTORE_TOOL_TIMEOUT_MS, err);
        if (rc == RV_ECHILD)
            rc = rv_error_set(err, RV_EINTEGRITY, false,
                              "restore: data checksums of the restored copy do not match: %s",
                              err->msg);
        res->checksums_checked = rc == 0;
    }
    return rc;
}

int restore_test(const struct pg_engine_config *node, const char *work_dir,
                 const struct restore_opts *o, struct restore_test_result *res,
                 struct rv_error *err)
{
    char dir[RV_PG_PATH_MAX - 32], data[RV_PG_PATH_MAX + 1], log[RV_PG_PATH_MAX + 1];
    char sock[64] = "/tmp/reeve-restore-XXXXXX";
    struct pg_engine e;
    struct rv_error te = {0};
    struct restore_opts so = *o;
    struct restore_result rr;
    bool engine_ok = false;
    int port = 0;
    int64_t started = child_now_ms();
    memset(res, 0, sizeof *res);
    memset(&rr, 0, sizeof rr);
    res->at_ms = wall_ms();
    if (snprintf(dir, sizeof dir, "%s/restore-test-XXXXXX", work_dir) >= (int)sizeof dir)
        return rv_error_set(err, RV_ELIMIT, false, "restore: work dir path is too long");
    if (!mkdtemp(dir))
        return rv_error_set(err, RV_EIO, false, "restore: cannot create a directory in '%s': %s",
                            work_dir, strerror(errno));
    if (!mkdtemp(sock)) {
        rmdir(dir);
        return rv_error_set(err, RV_EIO, false, "restore: cannot create a socket directory: %s",
                            strerror(errno));
    }
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    struct pg_engine_config cfg = *node;
    cfg.data_dir = data;
    cfg.socket_dir = sock;
    cfg.log_file = log;
    cfg.listen_address = "127.0.0.1";
    cfg.application_name = "restore-test";
    cfg.replication_password = node->replication_password ? node->replication_password : "-";
    int rc = free_port(&port, &te);
    cfg.port = port;
    if (rc == 0 && (rc = pg_engine_init(&e, &cfg, &te)) == 0)
        engine_ok = true;
    if (rc == 0 && e.run_as && (chown(dir, e.uid, e.gid) != 0 || chown(sock, e.uid, e.gid) != 0))
        rc = rv_error_set(&te, RV_EIO, false, "restore: cannot chown '%s': %s", dir,
                          strerror(errno));
    so.target = RESTORE_TARGET_IMMEDIATE;
    so.scratch = true;
    so.keep_failed = false;
    if (rc == 0)
        rc = restore_run(&e, &so, &rr, &te);
    snprintf(res->backup_id, sizeof res->backup_id, "%s", rr.backup_id);
    if (rc == 0)
        rc = scratch_checks(&e, res, &te);
    if (engine_ok) {
        struct rv_error se = {0};
        if (pg_engine_stop(&e, PG_STOP_IMMEDIATE, &se) != 0)
            log_error(COMPONENT, "cannot stop the scratch server: %s", se.msg);
        pg_engine_release(&e);
    }
    if (rc != 0 && rc != RV_ENOMEM)
        log_warn(COMPONENT, "test restore failed: %s", te.msg);
    wipe_dir(dir, true);
    rmdir(sock);
    res->ok = rc == 0;
    snprintf(res->error, sizeof res->error, "%s", rc == 0 ? "" : te.msg);
    res->duration_ms = child_now_ms() - started;
    if (rc == RV_ENOMEM) {
        *err = te;
        return rc;
    }
    log_info(COMPONENT, "test restore of backup '%s': %s in %" PRId64 " ms", res->backup_id,
             res->ok ? "ok" : "failed", res->duration_ms);
    return 0;
}

/* --- minimal WAL fetch --- */

int restore_wal_fetch(struct objstore *o, const uint8_t *key, const char *file, const char *path,
                      struct rv_error *err)
{
    char okey[RV_OBJSTORE_KEY_MAX + 1];
    struct rv_source *src = NULL;
    uint64_t stored = 0, total = 0;
    char buf[65536];
    int fd = -1, rc = 0;
    size_t n = strlen(file);
    if (n < 8 || n > RV_RESTORE_WAL_NAME_MAX || strspn(file, "0123456789ABCDEF") < 8 ||
        strspn(file, "0123456789ABCDEFabcdefghijklmnopqrstuvwxyz.") != n || file[0] == '.')
        return rv_error_set(err, RV_EINVAL, false, "restore: '%.80s' is not a WAL file name", file);
    snprintf(okey, sizeof okey, "wal/%.8s/%s", file, file);
    rc = open_decoded(&src, o, okey, key, NULL, &stored, err);
    if (rc != 0)
        return rc;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = rv_error_set(err, RV_EIO, false, "restore: cannot create '%s': %s", path,
                          strerror(errno));
    while (rc == 0) {
        size_t got = 0;
        if ((rc = rv_source_read(src, buf, sizeof buf, &got, err)) != 0 || got == 0)
            break;
        total += got;
        if (total > (uint64_t)RV_RESTORE_WAL_MAX) {
            rc = rv_error_set(err, RV_ELIMIT, false, "restore: '%s' is larger than %ld bytes", okey,
                              RV_RESTORE_WAL_MAX);
            break;
        }
        for (size_t off = 0; rc == 0 && off < got;) {
            ssize_t w = write(fd, buf + off, got - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                rc = rv_error_set(err, RV_EIO, false, "restore: cannot write '%s': %s", path,
                                  strerror(errno));
            else
                off += (size_t)w;
        }
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = rv_error_set(err, RV_EIO, false, "restore: cannot sync '%s': %s", path,
                          strerror(errno));
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = rv_error_set(err, RV_EIO, false, "restore: cannot close '%s': %s", path,
                          strerror(errno));
    if (rc != 0 && fd >= 0)
        unlink(path);
    rv_source_close(src);
    return rc;
}
