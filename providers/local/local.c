/* local.c - the `local` provider's instances (see local.h). */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define COMP "local"
#define PG_DIR "/usr/lib/postgresql"
/* MariaDB as Debian installs it: the server, and the tools' directory. */
#define MDB_SERVER "/usr/sbin/mariadbd"
#define MDB_BIN_DIR "/usr/bin"
#define REGION "local"

/* Fields reeve may set in agent.config and agent.config.engine; the rest
 * belong to this machine and are filled in here. */
static const char *const config_fields[] = {"node",
                                            "cluster",
                                            "reconciler",
                                            "ttl_ms",
                                            "tick_ms",
                                            "max_lag_on_failover_bytes",
                                            "max_lag_on_failover_transactions",
                                            "synchronous",
                                            "engine",
                                            NULL};
static const char *const engine_fields[] = {
    "type", "parameters", "superuser", "replication_user", "no_sync", NULL};

static void reconcile_log(struct local *l);

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

static bool in_list(const char *const *names, const char *s)
{
    for (size_t i = 0; names[i] != NULL; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

static int path_fmt(char *out, size_t cap, struct rv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int path_fmt(char *out, size_t cap, struct rv_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return rv_error_set(err, RV_ELIMIT, false,
                            "path '%.200s...' is too long; use a shorter "
                            "REEVE_LOCAL_ROOT",
                            out);
    return 0;
}

/* --- files --- */

static int write_file(const char *path, const char *data, size_t len, mode_t mode,
                      const struct local *l, struct rv_error *err)
{
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return rv_error_set(err, RV_EIO, true, "cannot write '%s': %s", path, strerror(errno));
    if (fchmod(fd, mode) != 0 || (l != NULL && l->run_as && fchown(fd, l->uid, l->gid) != 0)) {
        rc = rv_error_set(err, RV_EIO, true, "cannot set the owner of '%s': %s", path,
                          strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = rv_error_set(err, RV_EIO, true, "cannot write '%s': %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        rc = rv_error_set(err, RV_EIO, true, "cannot fsync '%s': %s", path, strerror(errno));
out:
    if (close(fd) != 0 && rc == 0)
        rc = rv_error_set(err, RV_EIO, true, "cannot write '%s': %s", path, strerror(errno));
    if (rc != 0)
        unlink(path);
    return rc;
}

static int make_dir(const char *path, mode_t mode, const struct local *l, bool own,
                    struct rv_error *err)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return rv_error_set(err, RV_EIO, true, "cannot create '%s': %s", path, strerror(errno));
    if (chmod(path, mode) != 0 || (own && l->run_as && chown(path, l->uid, l->gid) != 0))
        return rv_error_set(err, RV_EIO, true, "cannot set up '%s': %s", path, strerror(errno));
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        log_warn(COMP, "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) == 0)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Replace the state file: temp file, fsync, rename, fsync the directory. */
static int state_save(struct local *l, struct rv_error *err)
{
    char tmp[RV_LOCAL_PATH_MAX + 8];
    int rc = path_fmt(tmp, sizeof tmp, err, "%s.tmp", l->state_path);
    if (rc != 0)
        return rc;
    char *text = json_dumps(l->state, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (text == NULL)
        return rv_error_set(err, RV_ENOMEM, true, "out of memory writing the state");
    rc = write_file(tmp, text, strlen(text), 0600, NULL, err);
    free(text);
    if (rc != 0)
        return rc;
    if (rename(tmp, l->state_path) != 0) {
        rc = rv_error_set(err, RV_EIO, true, "cannot replace '%s': %s", l->state_path,
                          strerror(errno));
        unlink(tmp);
        return rc;
    }
    int dfd = open(l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static json_t *load_json_file(const char *path, size_t max, struct rv_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        rv_error_set(err, errno == ENOENT ? RV_ENOTFOUND : RV_EIO, false, "cannot read '%s': %s",
                     path, strerror(errno));
        return NULL;
    }
    if (sb.st_size < 0 || (size_t)sb.st_size > max) {
        rv_error_set(err, RV_ELIMIT, false, "'%s' is larger than %zu bytes", path, max);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        rv_error_set(err, RV_EPARSE, false, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return v;
}

/* --- configuration --- */

static int parse_net(unsigned net[3], const char *s, struct rv_error *err)
{
    unsigned a, b, c;
    char tail;
    if (sscanf(s, "%u.%u.%u%c", &a, &b, &c, &tail) != 3 || a != 127 || b > 255 || c > 255 ||
        (b == 0 && c == 0))
        return rv_error_set(err, RV_EINVAL, false,
                            "REEVE_LOCAL_NET '%s' must be three octets of a loopback network "
                            "other than 127.0.0, such as 127.0.100",
                            s);
    if (c + (RV_LOCAL_INSTANCES_MAX - 1) / 254 > 255)
        return rv_error_set(err, RV_EINVAL, false,
                            "REEVE_LOCAL_NET '%s' leaves no room for %d instances; pick a lower "
                            "third octet",
                            s, RV_LOCAL_INSTANCES_MAX);
    net[0] = a;
    net[1] = b;
    net[2] = c;
    return 0;
}

static bool is_exe(const char *dir, const char *name)
{
    char p[RV_LOCAL_PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    return n > 0 && (size_t)n < sizeof p && access(p, X_OK) == 0;
}

/* The installed MariaDB server's "major.minor" ("10.11") from `mariadbd
 * --version`; "" when there is none. */
static void mariadb_version(char *out, size_t cap)
{
    char line[256] = "";
    unsigned major = 0, minor = 0;
    out[0] = '\0';
    if (access(MDB_SERVER, X_OK) != 0 || !is_exe(MDB_BIN_DIR, "mariadb-install-db"))
        return;
    FILE *f = popen(MDB_SERVER " --version 2>/dev/null", "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    pclose(f);
    const char *v = strstr(line, "Ver ");
    if (v != NULL && sscanf(v + 4, "%u.%u", &major, &minor) == 2)
        snprintf(out, cap, "%u.%u", major, minor);
}

static int images_load(struct local *l, struct rv_error *err)
{
    json_t *pg = json_object(), *mdb = json_object();
    char mv[32];
    l->images = json_object();
    if (pg == NULL || mdb == NULL || l->images == NULL ||
        json_object_set_new(l->images, "postgresql", pg) != 0 ||
        json_object_set_new(l->images, "mariadb", mdb) != 0)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    mariadb_version(mv, sizeof mv);
    if (mv[0] != '\0')
        json_object_set_new(mdb, mv, json_string(MDB_BIN_DIR));
    DIR *d = opendir(PG_DIR);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char bin[RV_LOCAL_PATH_MAX];
            if (de->d_name[0] == '.' || strlen(de->d_name) > 16)
                continue;
            snprintf(bin, sizeof bin, PG_DIR "/%s/bin", de->d_name);
            if (is_exe(bin, "initdb") && json_object_size(pg) < RV_LOCAL_IMAGES_MAX)
                json_object_set_new(pg, de->d_name, json_string(bin));
        }
        closedir(d);
    }
    const char *file = getenv("REEVE_LOCAL_IMAGES");
    if (file == NULL || file[0] == '\0')
        return 0;
    json_t *cat = load_json_file(file, RV_LOCAL_IMAGES_FILE_MAX, err);
    if (cat == NULL)
        return err->code;
    int rc = 0;
    const char *engine, *version;
    json_t *versions, *bin;
    if (!json_is_object(cat)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "REEVE_LOCAL_IMAGES '%s' must be a JSON object "
                          "{\"postgresql\"|\"mariadb\": {\"<version>\": \"<bin dir>\"}}",
                          file);
        goto out;
    }
    json_object_foreach(cat, engine, versions)
    {
        bool is_mdb = strcmp(engine, "mariadb") == 0;
        if ((strcmp(engine, "postgresql") != 0 && !is_mdb) || !json_is_object(versions)) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "REEVE_LOCAL_IMAGES '%s': '%s' must be \"postgresql\" or "
                              "\"mariadb\" mapping versions to bin dirs",
                              file, engine);
            goto out;
        }
        json_t *cat_of = json_object_get(l->images, engine);
        json_object_foreach(versions, version, bin)
        {
            const char *b = json_string_value(bin);
            if (version[0] == '\0' || strlen(version) > 32 || b == NULL || b[0] != '/' ||
                strlen(b) >= RV_LOCAL_PATH_MAX / 2) {
                rc = rv_error_set(err, RV_EINVAL, false,
                                  "REEVE_LOCAL_IMAGES '%s': %s '%s' must map a version "
                                  "to an absolute bin dir",
                                  file, engine, version);
                goto out;
            }
            if (is_mdb ? !is_exe(b, "mariadb-install-db")
                       : (!is_exe(b, "initdb") || !is_exe(b, "pg_ctl")))
                log_warn(COMP, "image catalog: %s %s: no %s in '%s'", engine, version,
                         is_mdb ? "mariadb-install-db" : "initdb/pg_ctl", b);
            if (json_object_size(cat_of) >= RV_LOCAL_IMAGES_MAX) {
                rc = rv_error_set(err, RV_ELIMIT, false,
                                  "REEVE_LOCAL_IMAGES '%s' has more than %d versions", file,
                                  RV_LOCAL_IMAGES_MAX);
                goto out;
            }
            json_object_set(cat_of, version, bin);
        }
    }
out:
    json_decref(cat);
    return rc;
}

/* The state file's shape, checked at load: a malformed file is refused
 * rather than half-used. */
static bool record_ok(const char *id, const json_t *r)
{
    const char *strs[] = {"id",     "name",    "address", "engine", "version",
                          "region", "bin_dir", "sock",    "key"};
    if (!json_is_object(r))
        return false;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!json_is_string(json_object_get(r, strs[i])))
            return false;
    return strcmp(json_string_value(json_object_get(r, "id")), id) == 0 &&
           strncmp(id, "l-", 2) == 0 && strchr(id, '/') == NULL && strlen(id) < 32 &&
           json_is_object(json_object_get(r, "labels")) &&
           json_is_object(json_object_get(r, "resources")) &&
           json_is_integer(json_object_get(r, "pid")) &&
           json_is_integer(json_object_get(r, "slot")) &&
           json_is_boolean(json_object_get(r, "stopping"));
}

static int state_load(struct local *l, struct rv_error *err)
{
    struct rv_error e2 = {0};
    json_t *st = load_json_file(l->state_path, RV_LOCAL_STATE_FILE_MAX, &e2);
    if (st == NULL && e2.code != RV_ENOTFOUND)
        return rv_error_set(err, e2.code, false, "state file: %s; fix or move it aside", e2.msg);
    if (st == NULL) {
        st = json_pack("{s:i, s:{}, s:{}}", "next_id", 1, "instances", "keys");
        if (st == NULL)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    }
    l->state = st;
    json_t *insts = json_object_get(st, "instances"), *keys = json_object_get(st, "keys");
    if (!json_is_integer(json_object_get(st, "next_id")) || !json_is_object(insts) ||
        !json_is_object(keys) || json_object_size(insts) > RV_LOCAL_INSTANCES_MAX)
        return rv_error_set(err, RV_EPARSE, false,
                            "state file '%s' is malformed; fix or move it aside", l->state_path);
    const char *id;
    json_t *r;
    json_object_foreach(insts, id, r)
    {
        if (!record_ok(id, r))
            return rv_error_set(err, RV_EPARSE, false,
                                "state file '%s': instance '%.64s' is malformed; fix or move it "
                                "aside",
                                l->state_path, id);
    }
    return 0;
}

int local_init(struct local *l, struct rv_error *err)
{
    int rc = 0;
    memset(l, 0, sizeof *l);
    const char *root = getenv("REEVE_LOCAL_ROOT");
    if (root == NULL || root[0] == '\0')
        root = "./local-provider";
    char *abs = NULL;
    if (mkdir(root, 0711) != 0 && errno != EEXIST) {
        rc = rv_error_set(err, RV_EIO, false, "cannot create REEVE_LOCAL_ROOT '%s': %s", root,
                          strerror(errno));
        goto out;
    }
    abs = realpath(root, NULL);
    if (abs == NULL) {
        rc = rv_error_set(err, RV_EIO, false, "cannot resolve REEVE_LOCAL_ROOT '%s': %s", root,
                          strerror(errno));
        goto out;
    }
    if (strlen(abs) >= sizeof l->root) {
        rc = rv_error_set(err, RV_ELIMIT, false, "REEVE_LOCAL_ROOT '%s' is longer than %zu bytes",
                          abs, sizeof l->root - 1);
        goto out;
    }
    memcpy(l->root, abs, strlen(abs) + 1);
    chmod(l->root, 0711);
    if ((rc = path_fmt(l->state_path, sizeof l->state_path, err, "%s/state.json", l->root)) != 0)
        goto out;

    const char *agent = getenv("REEVE_AGENT_BIN");
    if (agent != NULL && agent[0] != '\0') {
        rc = path_fmt(l->agent_bin, sizeof l->agent_bin, err, "%s", agent);
    } else {
        char self[RV_LOCAL_PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            rc =
                rv_error_set(err, RV_EIO, false, "cannot read /proc/self/exe; set REEVE_AGENT_BIN");
            goto out;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        rc = path_fmt(l->agent_bin, sizeof l->agent_bin, err, "%s/reeve-agent", self);
    }
    if (rc != 0)
        goto out;
    if (access(l->agent_bin, X_OK) != 0) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "reeve-agent '%s' is not executable; build it or set REEVE_AGENT_BIN",
                          l->agent_bin);
        goto out;
    }

    struct passwd *pw;
    if (geteuid() == 0) {
        const char *user = getenv("REEVE_LOCAL_USER");
        if (user == NULL || user[0] == '\0')
            user = "postgres";
        pw = getpwnam(user);
        if (pw == NULL) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "REEVE_LOCAL_USER '%s' does not exist; create it or name another",
                              user);
            goto out;
        }
        l->run_as = pw->pw_uid != 0;
        if (!l->run_as) {
            rc = rv_error_set(err, RV_EINVAL, false,
                              "PostgreSQL refuses to run as root; set REEVE_LOCAL_USER to "
                              "another user");
            goto out;
        }
    } else {
        pw = getpwuid(geteuid());
        if (pw == NULL) {
            rc = rv_error_set(err, RV_EINVAL, false, "the current user has no passwd entry");
            goto out;
        }
    }
    if ((rc = path_fmt(l->user, sizeof l->user, err, "%s", pw->pw_name)) != 0)
        goto out;
    l->uid = pw->pw_uid;
    l->gid = pw->pw_gid;

    const char *net = getenv("REEVE_LOCAL_NET");
    if ((rc = parse_net(l->net, net != NULL && net[0] ? net : "127.0.100", err)) != 0)
        goto out;
    if ((rc = images_load(l, err)) != 0)
        goto out;
    char inst_dir[RV_LOCAL_PATH_MAX];
    if ((rc = path_fmt(inst_dir, sizeof inst_dir, err, "%s/instances", l->root)) != 0 ||
        (rc = make_dir(inst_dir, 0711, l, false, err)) != 0)
        goto out;
    if ((rc = state_load(l, err)) == 0)
        reconcile_log(l);
out:
    free(abs);
    if (rc != 0)
        local_release(l);
    return rc;
}

void local_release(struct local *l)
{
    json_decref(l->images);
    json_decref(l->state);
    l->images = NULL;
    l->state = NULL;
}

json_t *local_describe(const struct local *l)
{
    json_t *engines = json_object();
    const char *v, *name;
    json_t *bin, *cat;
    json_object_foreach(l->images, name, cat)
    {
        json_t *versions = json_array();
        json_object_foreach(cat, v, bin)
        {
            (void)bin;
            json_array_append_new(versions, json_string(v));
        }
        json_object_set_new(engines, name, versions);
    }
    return json_pack("{s:s, s:s, s:[s], s:o}", "name", "local", "version", REEVE_VERSION, "regions",
                     REGION, "engines", engines);
}

/* --- engines --- */

static bool is_mariadb(const json_t *r)
{
    const char *e = json_string_value(json_object_get(r, "engine"));
    return e != NULL && strcmp(e, "mariadb") == 0;
}

static int db_port(const json_t *r)
{
    return is_mariadb(r) ? RV_LOCAL_MDB_PORT : RV_LOCAL_DB_PORT;
}

/* The user an instance's agent and server run as: MariaDB instances run as
 * REEVE_LOCAL_MARIADB_USER (default mysql) when we are root and that user
 * exists; everything else as l->user. *tmp holds the MariaDB variant. */
static const struct local *run_user(const struct local *l, const json_t *r, struct local *tmp)
{
    if (!l->run_as || !is_mariadb(r))
        return l;
    const char *name = getenv("REEVE_LOCAL_MARIADB_USER");
    struct passwd *pw = getpwnam(name != NULL && name[0] ? name : "mysql");
    if (pw == NULL || pw->pw_uid == 0 || strlen(pw->pw_name) >= sizeof tmp->user)
        return l;
    *tmp = *l;
    snprintf(tmp->user, sizeof tmp->user, "%s", pw->pw_name);
    tmp->uid = pw->pw_uid;
    tmp->gid = pw->pw_gid;
    return tmp;
}

/* --- processes --- */

static void inst_dir(char *out, size_t cap, const struct local *l, const char *id)
{
    snprintf(out, cap, "%s/instances/%s", l->root, id);
}

/* Whether pid is alive and runs a program whose command line holds both
 * words (NULL: not checked); a zombie has an empty command line. */
static bool proc_matches(pid_t pid, const char *word1, const char *word2)
{
    char path[64], cmd[4096];
    if (pid <= 1 || kill(pid, 0) != 0)
        return false;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    return strstr(cmd, word1) != NULL && (word2 == NULL || strstr(cmd, word2) != NULL);
}

static bool agent_alive(const struct local *l, const json_t *r)
{
    char cfg[RV_LOCAL_PATH_MAX + 16], dir[RV_LOCAL_PATH_MAX];
    inst_dir(dir, sizeof dir, l, json_string_value(json_object_get(r, "id")));
    snprintf(cfg, sizeof cfg, "%s/agent.json", dir);
    return proc_matches((pid_t)json_integer_value(json_object_get(r, "pid")), "reeve-agent", cfg);
}

/* The postmaster of data_dir when one runs: postmaster.pid's first line,
 * alive, a postgres whose working directory is data_dir. */
static pid_t postmaster_of(const char *data_dir)
{
    char path[RV_LOCAL_PATH_MAX + 32], line[32] = "", cwd[RV_LOCAL_PATH_MAX];
    snprintf(path, sizeof path, "%s/postmaster.pid", data_dir);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    long v = strtol(line, NULL, 10);
    if (v <= 1 || v > 1L << 22 || !proc_matches((pid_t)v, "postgres", NULL))
        return -1;
    snprintf(path, sizeof path, "/proc/%ld/cwd", v);
    ssize_t n = readlink(path, cwd, sizeof cwd - 1);
    if (n <= 0)
        return -1;
    cwd[n] = '\0';
    return strcmp(cwd, data_dir) == 0 ? (pid_t)v : -1;
}

/* The mariadbd of data_dir when one runs: mariadbd.pid's pid, alive, a
 * mariadbd started with data_dir's reeve.cnf (agent/engine_mariadb.c). */
static pid_t mariadbd_of(const char *data_dir)
{
    char path[RV_LOCAL_PATH_MAX + 32], line[32] = "";
    snprintf(path, sizeof path, "%s/mariadbd.pid", data_dir);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    long v = strtol(line, NULL, 10);
    snprintf(path, sizeof path, "%s/reeve.cnf", data_dir);
    if (v <= 1 || v > 1L << 22 || !proc_matches((pid_t)v, "mariadbd", path))
        return -1;
    return (pid_t)v;
}

/* In a child: become the run-as user. */
static int drop_privileges(const struct local *l)
{
    if (!l->run_as)
        return 0;
    if (initgroups(l->user, l->gid) != 0 || setgid(l->gid) != 0 || setuid(l->uid) != 0)
        return -1;
    return 0;
}

/* Close every descriptor from lowfd up but keep. */
static void close_from(int lowfd, int keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = atoi(de->d_name);
        if (fd >= lowfd && fd != keep && fd != self)
            close(fd);
    }
    closedir(d);
}

/* A message on the spawn pipe: what (1 the agent's pid, 2 the errno of a
 * failed start) and its value; 8 bytes, so each write is atomic. */
struct spawn_msg {
    int32_t what;
    int32_t value;
};

static void spawn_send(int fd, int32_t what, int32_t value)
{
    struct spawn_msg m = {what, value};
    ssize_t w = write(fd, &m, sizeof m);
    (void)w;
}

/* Start reeve-agent detached: a double fork (the agent is not our child,
 * so nothing here has to reap it), setsid in the agent (its own session,
 * and a process group whose id is its pid), the run-as user, stdio to agent.log. The intermediate
 * child reports the agent's pid on a close-on-exec pipe; the agent reports a failure before exec on
 * the same pipe, and its successful exec closes it. */
static int spawn_agent(pid_t *out, const struct local *l, const char *dir, struct rv_error *err)
{
    char cfg[RV_LOCAL_PATH_MAX + 16], logp[RV_LOCAL_PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/agent.json", dir);
    snprintf(logp, sizeof logp, "%s/agent.log", dir);
    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        return rv_error_set(err, RV_EIO, true, "cannot open '%s': %s", logp, strerror(errno));
    if (l->run_as && fchown(logfd, l->uid, l->gid) != 0) {
        close(logfd);
        return rv_error_set(err, RV_EIO, true, "cannot chown '%s': %s", logp, strerror(errno));
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        close(logfd);
        return rv_error_set(err, RV_EIO, true, "pipe: %s", strerror(errno));
    }
    pid_t mid = fork();
    if (mid < 0) {
        close(logfd);
        close(pfd[0]);
        close(pfd[1]);
        return rv_error_set(err, RV_EIO, true, "fork: %s", strerror(errno));
    }
    if (mid == 0) {
        close(pfd[0]);
        pid_t agent = fork();
        if (agent != 0) {
            if (agent > 0)
                spawn_send(pfd[1], 1, (int32_t)agent);
            _exit(agent > 0 ? 0 : 1);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        if (setsid() < 0 || devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
            dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0 ||
            drop_privileges(l) != 0 || chdir(dir) != 0) {
            spawn_send(pfd[1], 2, errno);
            _exit(127);
        }
        close_from(3, pfd[1]);
        execl(l->agent_bin, "reeve-agent", "-c", cfg, (char *)NULL);
        spawn_send(pfd[1], 2, errno);
        _exit(127);
    }
    close(pfd[1]);
    close(logfd);
    int status = 0;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
        ;
    int32_t agent = 0, failure = 0;
    int64_t deadline = now_ms() + RV_LOCAL_SPAWN_WAIT_MS;
    for (;;) {
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        int64_t left = deadline - now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        struct spawn_msg m;
        ssize_t n = read(pfd[0], &m, sizeof m);
        if (n != (ssize_t)sizeof m)
            break; /* end of file: the agent exec'd */
        if (m.what == 1)
            agent = m.value;
        else if (m.what == 2)
            failure = m.value;
    }
    close(pfd[0]);
    if (agent <= 1)
        return rv_error_set(err, RV_EIO, true, "cannot start reeve-agent for '%s'", dir);
    if (failure != 0)
        return rv_error_set(err, RV_EIO, true,
                            "cannot start reeve-agent '%s' as '%s' in '%s': %s; check that the "
                            "user can reach that directory",
                            l->agent_bin, l->user, dir, strerror(failure));
    *out = (pid_t)agent;
    return 0;
}

/* Run bin_dir/pg_ctl stop -m immediate on data_dir as the run-as user,
 * bounded; output goes to the instance's agent.log. */
static void pg_stop_immediate(const struct local *l, const char *bin_dir, const char *dir,
                              const char *data)
{
    char pg_ctl[RV_LOCAL_PATH_MAX + 16], logp[RV_LOCAL_PATH_MAX + 16];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", bin_dir);
    snprintf(logp, sizeof logp, "%s/agent.log", dir);
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
            drop_privileges(l) != 0)
            _exit(126);
        close_from(3, -1);
        execl(pg_ctl, "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-t", "10",
              (char *)NULL);
        _exit(127);
    }
    int64_t deadline = now_ms() + RV_LOCAL_PG_STOP_WAIT_MS;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        sleep_ms(50);
    }
}

/* Stop the instance's agent and any server of its data dir. The agent gets
 * SIGTERM (it stops its server with a fast shutdown, then revokes its DCS
 * session); its process group gets SIGKILL after wait_ms. A server still
 * running after that is stopped with pg_ctl -m immediate, then killed.
 * Returns 0 when nothing of the instance runs any more. */
static int stop_instance(const struct local *l, const json_t *r, int64_t wait_ms,
                         struct rv_error *err)
{
    const char *id = json_string_value(json_object_get(r, "id"));
    char dir[RV_LOCAL_PATH_MAX], data[RV_LOCAL_PATH_MAX + 8];
    inst_dir(dir, sizeof dir, l, id);
    snprintf(data, sizeof data, "%s/data", dir);
    pid_t agent = (pid_t)json_integer_value(json_object_get(r, "pid"));
    if (agent_alive(l, r)) {
        log_info(COMP, "instance '%s': stopping agent %d", id, (int)agent);
        kill(agent, SIGTERM);
        int64_t deadline = now_ms() + wait_ms;
        while (agent_alive(l, r) && now_ms() < deadline)
            sleep_ms(100);
        if (agent_alive(l, r)) {
            log_warn(COMP, "instance '%s': agent %d did not stop within %lld ms; killing it", id,
                     (int)agent, (long long)wait_ms);
            kill(-agent, SIGKILL);
            kill(agent, SIGKILL);
            deadline = now_ms() + 2000;
            while (agent_alive(l, r) && now_ms() < deadline)
                sleep_ms(50);
        }
    }
    pid_t pm = postmaster_of(data);
    if (pm > 0) {
        log_warn(COMP, "instance '%s': a server (pid %d) outlived its agent; stopping it", id,
                 (int)pm);
        pg_stop_immediate(l, json_string_value(json_object_get(r, "bin_dir")), dir, data);
        if (postmaster_of(data) > 0)
            kill(pm, SIGKILL);
        int64_t deadline = now_ms() + 2000;
        while (postmaster_of(data) > 0 && now_ms() < deadline)
            sleep_ms(50);
    }
    pid_t md = mariadbd_of(data);
    if (md > 0) {
        log_warn(COMP, "instance '%s': a server (pid %d) outlived its agent; stopping it", id,
                 (int)md);
        kill(md, SIGTERM);
        int64_t deadline = now_ms() + RV_LOCAL_PG_STOP_WAIT_MS;
        while (mariadbd_of(data) > 0 && now_ms() < deadline)
            sleep_ms(50);
        if (mariadbd_of(data) > 0)
            kill(md, SIGKILL);
        deadline = now_ms() + 2000;
        while (mariadbd_of(data) > 0 && now_ms() < deadline)
            sleep_ms(50);
    }
    if (agent_alive(l, r) || postmaster_of(data) > 0 || mariadbd_of(data) > 0)
        return rv_error_set(err, RV_ETIMEOUT, true,
                            "instance '%s' still has processes running; retry the delete", id);
    return 0;
}

/* --- instances --- */

static const char *inst_state(const struct local *l, const json_t *r)
{
    if (json_is_true(json_object_get(r, "stopping")))
        return "stopped";
    return agent_alive(l, r) ? "running" : "failed";
}

static json_t *inst_view(const struct local *l, const json_t *r)
{
    const char *keys[] = {"id",     "name",    "labels", "address",
                          "engine", "version", "region", "resources"};
    json_t *v = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_set(v, keys[i], json_object_get(r, keys[i]));
    json_object_set_new(v, "ports", json_pack("{s:i}", "db", db_port(r)));
    json_object_set_new(v, "state", json_string(inst_state(l, r)));
    return v;
}

static json_t *instances(const struct local *l)
{
    return json_object_get(l->state, "instances");
}

static json_t *keys(const struct local *l)
{
    return json_object_get(l->state, "keys");
}

/* params.labels: an object of strings, as the schema bounds it. */
static int check_labels(const json_t *labels, const char *where, struct rv_error *err)
{
    const char *k;
    json_t *v;
    if (!json_is_object(labels) || json_object_size(labels) > 96)
        return rv_error_set(err, RV_EINVAL, false, "%s must be an object of at most 96 strings",
                            where);
    json_object_foreach((json_t *)labels, k, v)
    {
        size_t kl = strlen(k);
        if (kl == 0 || kl > 317 || !json_is_string(v) || json_string_length(v) > 4096)
            return rv_error_set(err, RV_EINVAL, false,
                                "%s: '%.64s' must be a string of at most 4096 bytes under a key "
                                "of 1 to 317 bytes",
                                where, k);
    }
    return 0;
}

static int check_resources(const json_t *res, struct rv_error *err)
{
    const char *names[] = {"cpu", "memoryMiB", "storageGiB"};
    if (!json_is_object(res) || json_object_size(res) != 3)
        return rv_error_set(err, RV_EINVAL, false,
                            "params.resources must be {cpu, memoryMiB, storageGiB}");
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(res, names[i]);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > (i == 0 ? 4096 : INT64_C(1) << 40))
            return rv_error_set(err, RV_EINVAL, false,
                                "params.resources.%s must be a positive integer", names[i]);
    }
    return 0;
}

static int check_only(const json_t *obj, const char *const *allowed, const char *where,
                      struct rv_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        (void)v;
        if (!in_list(allowed, k))
            return rv_error_set(err, RV_EINVAL, false, "%s.%.64s: unknown field", where, k);
    }
    return 0;
}

static const char *str_param(const json_t *params, const char *key, size_t max)
{
    const json_t *v = json_object_get(params, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* A secret: a line of printable text. */
static bool secret_ok(const char *s)
{
    if (s == NULL)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Remember key for method on id; keys of instances that are gone make room
 * first, then the oldest of the others. */
static void key_record(struct local *l, const char *key, const char *method, const char *id,
                       json_t *result)
{
    json_t *ks = keys(l);
    while (json_object_size(ks) >= RV_LOCAL_KEYS_MAX) {
        const char *victim = NULL, *k;
        json_t *e;
        json_object_foreach(ks, k, e)
        {
            if (victim == NULL)
                victim = k;
            if (json_object_get(instances(l), json_string_value(json_object_get(e, "id"))) ==
                NULL) {
                victim = k;
                break;
            }
        }
        char *copy = victim != NULL ? strdup(victim) : NULL;
        int gone = copy != NULL ? json_object_del(ks, copy) : -1;
        free(copy);
        if (gone != 0)
            break;
    }
    json_t *e = json_pack("{s:s, s:s}", "method", method, "id", id);
    if (result != NULL)
        json_object_set(e, "result", result);
    json_object_set_new(ks, key, e);
}

/* The entry of a key seen before: NULL when new, else the entry, or a
 * conflict when it was used for another method. */
static int key_lookup(json_t **entry, struct local *l, const char *key, const char *method,
                      struct rv_error *err)
{
    *entry = NULL;
    if (key == NULL || key[0] == '\0' || strlen(key) > RV_PROVIDER_IDEMPOTENCY_KEY_MAX)
        return rv_error_set(err, RV_EINVAL, false, "%s needs an idempotency_key of 1 to %d bytes",
                            method, RV_PROVIDER_IDEMPOTENCY_KEY_MAX);
    json_t *e = json_object_get(keys(l), key);
    if (e == NULL)
        return 0;
    const char *m = json_string_value(json_object_get(e, "method"));
    if (m == NULL || strcmp(m, method) != 0)
        return rv_error_set(err, RV_ECONFLICT, false,
                            "idempotency key '%s' was used for %s; a retry must reuse the method",
                            key, m != NULL ? m : "another method");
    *entry = e;
    return 0;
}

int local_list(json_t **out, struct local *l, const json_t *params, struct rv_error *err)
{
    const json_t *want = json_object_get(params, "labels");
    int rc;
    if ((rc = check_only(params, (const char *const[]){"labels", NULL}, "params", err)) != 0)
        return rc;
    if (want != NULL && (rc = check_labels(want, "params.labels", err)) != 0)
        return rc;
    json_t *arr = json_array();
    const char *id, *k;
    json_t *r, *v;
    json_object_foreach(instances(l), id, r)
    {
        bool match = true;
        json_object_foreach((json_t *)want, k, v)
        {
            const char *have = json_string_value(json_object_get(json_object_get(r, "labels"), k));
            if (have == NULL || strcmp(have, json_string_value(v)) != 0)
                match = false;
        }
        if (match)
            json_array_append_new(arr, inst_view(l, r));
    }
    *out = json_pack("{s:o}", "instances", arr);
    return *out != NULL ? 0 : rv_error_set(err, RV_ENOMEM, true, "out of memory");
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Check create_instance's params; on success the pieces are in the out
 * arguments (borrowed from params). */
static int create_check(const json_t *params, const char **name, json_t **config, json_t **secrets,
                        struct rv_error *err)
{
    static const char *const fields[] = {"name",   "labels",    "engine", "version",
                                         "region", "resources", "agent",  NULL};
    int rc;
    if ((rc = check_only(params, fields, "params", err)) != 0)
        return rc;
    *name = str_param(params, "name", 128);
    if (*name == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "params.name must be a string of 1 to 128 bytes");
    if ((rc = check_labels(json_object_get(params, "labels"), "params.labels", err)) != 0 ||
        (rc = check_resources(json_object_get(params, "resources"), err)) != 0)
        return rc;
    const char *strs[] = {"engine", "version", "region"};
    for (size_t i = 0; i < 3; i++)
        if (str_param(params, strs[i], 64) == NULL)
            return rv_error_set(err, RV_EINVAL, false,
                                "params.%s must be a string of 1 to 64 bytes", strs[i]);
    json_t *agent = json_object_get(params, "agent");
    if (!json_is_object(agent))
        return rv_error_set(err, RV_EINVAL, false, "params.agent must be {config, secrets}");
    if ((rc = check_only(agent, (const char *const[]){"config", "secrets", NULL}, "params.agent",
                         err)) != 0)
        return rc;
    *config = json_object_get(agent, "config");
    *secrets = json_object_get(agent, "secrets");
    if (!json_is_object(*config))
        return rv_error_set(err, RV_EINVAL, false, "params.agent.config must be an object");
    if ((rc = check_only(*config, config_fields, "params.agent.config", err)) != 0) {
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                 " (the local provider sets the machine's own fields)");
        return rc;
    }
    const char *req[] = {"node", "cluster", "reconciler"};
    for (size_t i = 0; i < 3; i++)
        if (str_param(*config, req[i], RV_AGENT_URL_MAX) == NULL)
            return rv_error_set(err, RV_EINVAL, false,
                                "params.agent.config.%s must be a non-empty string", req[i]);
    json_t *eng = json_object_get(*config, "engine");
    if (eng != NULL) {
        if (!json_is_object(eng))
            return rv_error_set(err, RV_EINVAL, false,
                                "params.agent.config.engine must be an object");
        if ((rc = check_only(eng, engine_fields, "params.agent.config.engine", err)) != 0) {
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg),
                     " (the local provider sets the machine's own fields)");
            return rc;
        }
        const char *type = json_string_value(json_object_get(eng, "type"));
        const char *want = str_param(params, "engine", 64);
        if (json_object_get(eng, "type") != NULL &&
            (type == NULL || want == NULL || strcmp(type, want) != 0))
            return rv_error_set(err, RV_EINVAL, false,
                                "params.agent.config.engine.type must be the instance's engine "
                                "('%s')",
                                want != NULL ? want : "postgresql");
    }
    if (!json_is_object(*secrets))
        return rv_error_set(err, RV_EINVAL, false,
                            "params.agent.secrets must be {registration_token, "
                            "replication_password}");
    static const char *const sec[] = {"registration_token", "replication_password", NULL};
    if ((rc = check_only(*secrets, sec, "params.agent.secrets", err)) != 0)
        return rc;
    for (size_t i = 0; i < 2; i++)
        if (!secret_ok(str_param(*secrets, sec[i], RV_LOCAL_SECRET_MAX)))
            return rv_error_set(err, RV_EINVAL, false,
                                "params.agent.secrets.%s must be 1 to %d printable bytes", sec[i],
                                RV_LOCAL_SECRET_MAX);
    return 0;
}

/* Lay out <dir> and start the agent. */
static int provision(pid_t *pid, struct local *lp, const json_t *r, const json_t *config,
                     const json_t *secrets, struct rv_error *err)
{
    struct local tmp;
    const struct local *l = run_user(lp, r, &tmp);
    const char *id = json_string_value(json_object_get(r, "id"));
    const char *sock = json_string_value(json_object_get(r, "sock"));
    char dir[RV_LOCAL_PATH_MAX], p[RV_LOCAL_PATH_MAX + 64], ref[RV_LOCAL_PATH_MAX + 80];
    int rc;
    json_t *cfg = NULL;
    char *text = NULL;
    inst_dir(dir, sizeof dir, l, id);
    if ((rc = make_dir(dir, 0700, l, true, err)) != 0 ||
        (rc = make_dir(sock, 0700, l, true, err)) != 0)
        goto out;
    cfg = json_deep_copy(config);
    json_t *eng = json_object_get(cfg, "engine");
    if (eng == NULL) {
        eng = json_object();
        json_object_set_new(cfg, "engine", eng);
    }
    const char *files[] = {"registration-token", "replication-password"};
    const char *names[] = {"registration_token", "replication_password"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(secrets, names[i]));
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if ((rc = write_file(p, v, strlen(v), 0600, l, err)) != 0)
            goto out;
        snprintf(ref, sizeof ref, "file:%s", p);
        json_object_set_new(i == 0 ? cfg : eng, names[i], json_string(ref));
    }
    snprintf(p, sizeof p, "%s/state", dir);
    json_object_set_new(cfg, "state_dir", json_string(p));
    json_object_set(eng, "type", json_object_get(r, "engine"));
    json_object_set(eng, "bin_dir", json_object_get(r, "bin_dir"));
    snprintf(p, sizeof p, "%s/data", dir);
    json_object_set_new(eng, "data_dir", json_string(p));
    json_object_set(eng, "socket_dir", json_object_get(r, "sock"));
    json_object_set(eng, "listen_address", json_object_get(r, "address"));
    json_object_set_new(eng, "port", json_integer(db_port(r)));
    json_object_set_new(eng, "os_user", json_string(l->user));
    json_object_set_new(eng, "allowed_cidr", json_string("127.0.0.0/8"));
    snprintf(p, sizeof p, "%s/%s", dir, is_mariadb(r) ? "mariadb.err" : "postgres.log");
    json_object_set_new(eng, "log_file", json_string(p));
    text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, true, "out of memory");
        goto out;
    }
    snprintf(p, sizeof p, "%s/agent.json", dir);
    if ((rc = write_file(p, text, strlen(text), 0600, l, err)) != 0)
        goto out;
    if ((rc = spawn_agent(pid, l, dir, err)) != 0)
        goto out;
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)*pid);
    snprintf(p, sizeof p, "%s/agent.pid", dir);
    if (write_file(p, pidtext, strlen(pidtext), 0644, NULL, err) != 0)
        log_warn(COMP, "instance '%s': %s", id, err->msg);
    rc = 0;
out:
    free(text);
    json_decref(cfg);
    return rc;
}

static void forget(struct local *l, const json_t *r, const char *key)
{
    char dir[RV_LOCAL_PATH_MAX];
    const char *id = json_string_value(json_object_get(r, "id"));
    inst_dir(dir, sizeof dir, l, id);
    remove_tree(json_string_value(json_object_get(r, "sock")));
    remove_tree(dir);
    if (key != NULL)
        json_object_del(keys(l), key);
    json_object_del(instances(l), id);
}

int local_create(json_t **out, struct local *l, const json_t *params, const char *key,
                 struct rv_error *err)
{
    json_t *entry, *config = NULL, *secrets = NULL, *r = NULL;
    const char *name;
    int rc;
    if ((rc = key_lookup(&entry, l, key, "create_instance", err)) != 0)
        return rc;
    if (entry != NULL) {
        json_t *have =
            json_object_get(instances(l), json_string_value(json_object_get(entry, "id")));
        *out = have != NULL ? json_pack("{s:o}", "instance", inst_view(l, have))
                            : json_incref(json_object_get(entry, "result"));
        if (*out == NULL)
            return rv_error_set(err, RV_EINTERNAL, true,
                                "idempotency key '%s': the instance it created is gone", key);
        return 0;
    }
    if ((rc = create_check(params, &name, &config, &secrets, err)) != 0)
        return rc;
    const char *engine = str_param(params, "engine", 64);
    const char *version = str_param(params, "version", 64);
    const char *region = str_param(params, "region", 64);
    if (strcmp(engine, "postgresql") != 0 && strcmp(engine, "mariadb") != 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "engine '%s' is not offered by the local provider; it runs "
                            "postgresql and mariadb",
                            engine);
    /* Every region is this machine: specs written for a region name
     * ("local-1", a cloud's name in a copied spec) run here unchanged. */
    json_t *bin = json_object_get(json_object_get(l->images, engine), version);
    if (bin == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "no binaries for %s %s in the image catalog; install "
                            "%s or add it to REEVE_LOCAL_IMAGES",
                            engine, version,
                            strcmp(engine, "mariadb") == 0
                                ? "mariadb-server (scripts/deps.sh)"
                                : "the postgresql package of that version");
    const char *id;
    json_t *o;
    bool used[RV_LOCAL_INSTANCES_MAX] = {false};
    json_object_foreach(instances(l), id, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return rv_error_set(err, RV_ECONFLICT, false,
                                "an instance named '%s' exists (%s, created with another "
                                "idempotency key); delete it first or choose another name",
                                name, id);
        json_int_t s = json_integer_value(json_object_get(o, "slot"));
        if (s >= 0 && s < RV_LOCAL_INSTANCES_MAX)
            used[s] = true;
    }
    int slot = 0;
    while (slot < RV_LOCAL_INSTANCES_MAX && used[slot])
        slot++;
    if (slot == RV_LOCAL_INSTANCES_MAX || json_object_size(instances(l)) >= RV_LOCAL_INSTANCES_MAX)
        return rv_error_set(err, RV_ELIMIT, false,
                            "the local provider runs at most %d instances; delete some first",
                            RV_LOCAL_INSTANCES_MAX);

    json_int_t n = json_integer_value(json_object_get(l->state, "next_id"));
    char iid[32], addr[32], dir[RV_LOCAL_PATH_MAX], sock[RV_LOCAL_PATH_MAX];
    snprintf(iid, sizeof iid, "l-%06lld", (long long)n);
    snprintf(addr, sizeof addr, "%u.%u.%u.%u", l->net[0], l->net[1],
             l->net[2] + (unsigned)slot / 254, (unsigned)slot % 254 + 1);
    inst_dir(dir, sizeof dir, l, iid);
    if (snprintf(sock, sizeof sock, "%s/sock", dir) > RV_PG_SOCKET_DIR_MAX)
        snprintf(sock, sizeof sock, "/tmp/reeve-local-%08x-%s", fnv1a(l->root), iid);
    r = json_pack("{s:s, s:s, s:O, s:s, s:s, s:s, s:s, s:O, s:O, s:s, s:s, s:i, s:i, s:b}", "id",
                  iid, "name", name, "labels", json_object_get(params, "labels"), "address", addr,
                  "engine", engine, "version", version, "region", region, "resources",
                  json_object_get(params, "resources"), "bin_dir", bin, "sock", sock, "key", key,
                  "pid", 0, "slot", slot, "stopping", 0);
    if (r == NULL)
        return rv_error_set(err, RV_ENOMEM, true, "out of memory");
    json_object_set_new(l->state, "next_id", json_integer(n + 1));
    json_object_set_new(instances(l), iid, r);
    key_record(l, key, "create_instance", iid, NULL);
    /* Persisted before anything starts: a crash from here on leaves an
     * instance the state knows of (reported failed), never an unknown one. */
    if ((rc = state_save(l, err)) != 0) {
        forget(l, r, key);
        return rc;
    }
    pid_t pid = 0;
    if ((rc = provision(&pid, l, r, config, secrets, err)) != 0) {
        struct rv_error e2 = {0};
        log_error(COMP, "instance '%s' ('%s'): %s; removing it", iid, name, err->msg);
        forget(l, r, key);
        if (state_save(l, &e2) != 0)
            log_error(COMP, "%s", e2.msg);
        return rc;
    }
    json_object_set_new(r, "pid", json_integer(pid));
    *out = json_pack("{s:o}", "instance", inst_view(l, r));
    json_object_set(json_object_get(keys(l), key), "result", *out);
    if ((rc = state_save(l, err)) != 0) {
        log_error(COMP, "instance '%s': %s; stopping its agent", iid, err->msg);
        json_decref(*out);
        *out = NULL;
        struct rv_error e2 = {0};
        stop_instance(l, r, RV_LOCAL_STOP_WAIT_MS, &e2);
        forget(l, r, key);
        return rc;
    }
    log_info(COMP, "instance '%s' ('%s') at %s: agent %d started", iid, name, addr, (int)pid);
    return 0;
}

int local_delete(json_t **out, struct local *l, const json_t *params, const char *key,
                 int64_t deadline_ms, struct rv_error *err)
{
    json_t *entry;
    int rc;
    if ((rc = key_lookup(&entry, l, key, "delete_instance", err)) != 0 ||
        (rc = check_only(params, (const char *const[]){"id", NULL}, "params", err)) != 0)
        return rc;
    const char *id = str_param(params, "id", 256);
    if (id == NULL)
        return rv_error_set(err, RV_EINVAL, false, "params.id must be a non-empty string");
    json_t *r = json_incref(json_object_get(instances(l), id));
    if (r != NULL) {
        if (!json_is_true(json_object_get(r, "stopping"))) {
            json_object_set_new(r, "stopping", json_true());
            if ((rc = state_save(l, err)) != 0)
                goto out;
        }
        int64_t wait = deadline_ms - RV_LOCAL_PG_STOP_WAIT_MS - 4000;
        if (wait > RV_LOCAL_STOP_WAIT_MS)
            wait = RV_LOCAL_STOP_WAIT_MS;
        if (wait < 1000)
            wait = 1000;
        if ((rc = stop_instance(l, r, wait, err)) != 0)
            goto out;
        forget(l, r, NULL);
        log_info(COMP, "instance '%s' ('%s') deleted", id,
                 json_string_value(json_object_get(r, "name")));
    }
    key_record(l, key, "delete_instance", id, NULL);
    if ((rc = state_save(l, err)) != 0)
        goto out;
    *out = json_object();
out:
    json_decref(r);
    return rc;
}

int local_resize(json_t **out, struct local *l, const json_t *params, const char *key,
                 struct rv_error *err)
{
    json_t *entry;
    int rc;
    if ((rc = key_lookup(&entry, l, key, "resize_instance", err)) != 0 ||
        (rc = check_only(params, (const char *const[]){"id", "resources", NULL}, "params", err)) !=
            0)
        return rc;
    const char *id = str_param(params, "id", 256);
    if (id == NULL)
        return rv_error_set(err, RV_EINVAL, false, "params.id must be a non-empty string");
    json_t *r = json_object_get(instances(l), id);
    if (r == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "no instance '%s'; list_instances shows what exists", id);
    if (entry != NULL) {
        *out = json_pack("{s:o}", "instance", inst_view(l, r));
        return 0;
    }
    const json_t *res = json_object_get(params, "resources");
    if ((rc = check_resources(res, err)) != 0)
        return rc;
    json_int_t was =
        json_integer_value(json_object_get(json_object_get(r, "resources"), "storageGiB"));
    json_int_t now = json_integer_value(json_object_get(res, "storageGiB"));
    if (now < was)
        return rv_error_set(err, RV_EINVAL, false,
                            "storage of '%s' cannot shrink (from %lld to %lld GiB); create a "
                            "smaller instance and move the node instead",
                            id, (long long)was, (long long)now);
    json_object_set(r, "resources", (json_t *)res);
    key_record(l, key, "resize_instance", id, NULL);
    if ((rc = state_save(l, err)) != 0)
        return rc;
    *out = json_pack("{s:o}", "instance", inst_view(l, r));
    return 0;
}

/* Called at start: say what each instance's agent is doing. Dead agents
 * are reported failed and left alone (see docs/providers.md). */
static void reconcile_log(struct local *l)
{
    const char *id;
    json_t *r;
    json_object_foreach(instances(l), id, r)
    {
        const char *st = inst_state(l, r);
        if (strcmp(st, "running") == 0)
            log_info(COMP, "instance '%s': agent %lld is running", id,
                     (long long)json_integer_value(json_object_get(r, "pid")));
        else if (strcmp(st, "stopped") == 0)
            log_info(COMP, "instance '%s': a delete began; a retry of it finishes it", id);
        else
            log_warn(COMP,
                     "instance '%s': its agent is not running; reporting it failed "
                     "(delete it and let reeve create it again)",
                     id);
    }
}

/* --- upgrade_instance (capability "upgrade") --- */

/* Point agent.json of the instance at bin. */
static int agent_json_bin_dir(const struct local *l, const char *dir, const char *bin,
                              struct rv_error *err)
{
    char p[RV_LOCAL_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/agent.json", dir);
    json_t *cfg = load_json_file(p, RV_LOCAL_STATE_FILE_MAX, err);
    if (cfg == NULL)
        return err->code;
    json_t *eng = json_object_get(cfg, "engine");
    int rc = 0;
    char *text = NULL;
    if (!json_is_object(eng) || json_object_set_new(eng, "bin_dir", json_string(bin)) != 0 ||
        (text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
        rc = rv_error_set(err, RV_EPARSE, false, "'%s' has no engine section", p);
    if (rc == 0)
        rc = write_file(p, text, strlen(text), 0600, l, err);
    free(text);
    json_decref(cfg);
    return rc;
}

/* The instance's server runs the binaries of another catalog version from
 * now on: its agent is stopped (fast shutdown of the server, the DCS
 * session revoked), agent.json points at the new bin dir, and a new agent
 * starts the server again with them, as the replica (or primary) it was. */
int local_upgrade(json_t **out, struct local *l, const json_t *params, const char *key,
                  int64_t deadline_ms, struct rv_error *err)
{
    json_t *entry;
    int rc;
    if ((rc = key_lookup(&entry, l, key, "upgrade_instance", err)) != 0 ||
        (rc = check_only(params, (const char *const[]){"id", "version", NULL}, "params", err)) != 0)
        return rc;
    const char *id = str_param(params, "id", 256);
    const char *version = str_param(params, "version", 64);
    if (id == NULL || version == NULL)
        return rv_error_set(err, RV_EINVAL, false,
                            "params.id and params.version must be non-empty strings");
    json_t *r = json_object_get(instances(l), id);
    if (r == NULL)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "no instance '%s'; list_instances shows what exists", id);
    if (entry != NULL) {
        *out = json_pack("{s:o}", "instance", inst_view(l, r));
        return 0;
    }
    const char *engine = is_mariadb(r) ? "mariadb" : "postgresql";
    json_t *bin = json_object_get(json_object_get(l->images, engine), version);
    if (!json_is_string(bin))
        return rv_error_set(err, RV_EINVAL, false,
                            "no binaries for %s %s in the image catalog; install %s%s or add it "
                            "to REEVE_LOCAL_IMAGES",
                            engine, version, is_mariadb(r) ? "mariadb-server " : "postgresql-",
                            version);
    const char *was = json_string_value(json_object_get(r, "version"));
    char dir[RV_LOCAL_PATH_MAX];
    inst_dir(dir, sizeof dir, l, id);
    int64_t wait = deadline_ms - RV_LOCAL_PG_STOP_WAIT_MS - 4000;
    if (wait > RV_LOCAL_STOP_WAIT_MS)
        wait = RV_LOCAL_STOP_WAIT_MS;
    if (wait < 1000)
        wait = 1000;
    log_info(COMP, "instance '%s': %s %s -> %s ('%s')", id, engine, was, version,
             json_string_value(bin));
    struct local tmp;
    const struct local *lu = run_user(l, r, &tmp); /* MariaDB runs as its own user */
    if ((rc = stop_instance(l, r, wait, err)) != 0 ||
        (rc = agent_json_bin_dir(lu, dir, json_string_value(bin), err)) != 0)
        return rc;
    /* The new version is recorded once its agent runs: a failed start is
     * retried as the upgrade it still is. */
    pid_t pid = 0;
    if ((rc = spawn_agent(&pid, lu, dir, err)) != 0)
        return rc;
    json_object_set_new(r, "version", json_string(version));
    json_object_set(r, "bin_dir", bin);
    json_object_set_new(r, "pid", json_integer(pid));
    char p[RV_LOCAL_PATH_MAX + 16], pidtext[32];
    snprintf(p, sizeof p, "%s/agent.pid", dir);
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    if (write_file(p, pidtext, strlen(pidtext), 0644, NULL, err) != 0)
        log_warn(COMP, "instance '%s': %s", id, err->msg);
    key_record(l, key, "upgrade_instance", id, NULL);
    if ((rc = state_save(l, err)) != 0)
        return rc;
    log_info(COMP, "instance '%s': agent %d started with %s %s", id, (int)pid, engine, version);
    *out = json_pack("{s:o}", "instance", inst_view(l, r));
    return 0;
}
