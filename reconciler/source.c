/* source.c - the Git source: a bare mirror fetched with libgit2 (see source.h). */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <git2.h>
#include <git2/sys/stream.h>

#include "limits.h"
#include "log.h"

#define SOURCE_PULL_NS "refs/reeve/pull/"
#define SOURCE_LOCK_FILE "reeve-fetch.lock"

struct source {
    git_repository *repo;
    char *url;         /* as configured; may hold user info */
    char *url_display; /* user info removed */
    bool url_has_userinfo;
    bool url_is_network; /* http:// or https:// */
    char *mirror_dir;
    char *main_branch;
    char *main_ref; /* refs/heads/<main_branch> */
    enum source_forge forge;
    enum source_auth auth;
    char *username;
    char *secret; /* wiped before free */
    unsigned fetch_timeout_ms;
};

/* Written once by source_global_init() before any thread uses a source. */
static unsigned source_io_timeout_ms = RV_GIT_IO_TIMEOUT_MS;
/* I/O timeouts seen by the socket stream on this thread. libgit2's TLS layer
 * replaces the stream's error message with its own ("SSL error: ..."), so
 * source_fetch() compares this count before and after to tell a timeout
 * from other failures. Per thread, so fetches on other threads never mix. */
static _Thread_local unsigned long stream_timeouts;

/* ---- small helpers ---------------------------------------------------- */

static const char *git_msg(void)
{
    const git_error *e = git_error_last();
    return (e && e->message) ? e->message : "unknown libgit2 error";
}

static int git_klass(void)
{
    const git_error *e = git_error_last();
    return e ? e->klass : GIT_ERROR_NONE;
}

static void secret_wipe_free(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* strerror() is not thread-safe; these functions run on worker threads. */
static const char *errstr(int e, char *buf, size_t size)
{
    return strerror_r(e, buf, size);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void oid_short(char out[GIT_OID_HEXSZ + 1], const git_oid *oid)
{
    git_oid_tostr(out, 13, oid);
}

/* Replace every occurrence of the secret in a message with "***": libgit2's
 * messages should never carry it, but a message is the one place it could
 * leak to a log. */
static void scrub_secret(struct rv_error *err, const char *secret)
{
    if (err == NULL || secret == NULL || secret[0] == '\0')
        return;
    size_t slen = strlen(secret);
    char out[sizeof(err->msg)];
    size_t o = 0;
    const char *in = err->msg;
    while (*in && o + 1 < sizeof(out)) {
        if (strncmp(in, secret, slen) == 0) {
            for (int i = 0; i < 3 && o + 1 < sizeof(out); i++)
                out[o++] = '*';
            in += slen;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
    memcpy(err->msg, out, o + 1);
}

/* ---- URL handling ----------------------------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Check the URL and make a copy without user info ("https://host/x.git"). */
static int url_prepare(struct source *src, const char *url, struct rv_error *err)
{
    size_t len = url ? strlen(url) : 0;
    if (len == 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "source url is empty (set the repository url or path)");
    if (len > RV_GIT_URL_MAX)
        return rv_error_set(err, RV_EINVAL, false,
                            "source url is %zu characters, longer than the %d allowed", len,
                            RV_GIT_URL_MAX);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f)
            return rv_error_set(err, RV_EINVAL, false,
                                "source url contains a control character (check the config)");
    }
    const char *scheme_end = strstr(url, "://");
    if (has_prefix(url, "http://") || has_prefix(url, "https://")) {
        src->url_is_network = true;
        const char *auth_start = scheme_end + 3;
        const char *auth_end = auth_start + strcspn(auth_start, "/?#");
        const char *at = NULL;
        for (const char *p = auth_start; p < auth_end; p++) {
            if (*p == '@')
                at = p;
        }
        const char *host = at ? at + 1 : auth_start;
        if (host == auth_end)
            return rv_error_set(err, RV_EINVAL, false,
                                "source url has no host (expected https://host/owner/repo.git)");
        size_t scheme_len = (size_t)(auth_start - url);
        src->url_display = malloc(len + 1);
        if (src->url_display == NULL)
            return RV_ENOMEM;
        memcpy(src->url_display, url, scheme_len);
        strcpy(src->url_display + scheme_len, host);
        src->url_has_userinfo = at != NULL;
    } else if (has_prefix(url, "file://") || scheme_end == NULL) {
        /* scp-like "user@host:path" has a colon before the first slash */
        const char *colon = strchr(url, ':');
        const char *slash = strchr(url, '/');
        if (scheme_end == NULL && colon && (slash == NULL || colon < slash))
            return rv_error_set(err, RV_EINVAL, false,
                                "source url '%s' looks like ssh; only local paths, file://, "
                                "http:// and https:// are supported (use https:// with a token)",
                                url);
        src->url_display = strdup(url);
        if (src->url_display == NULL)
            return RV_ENOMEM;
    } else {
        return rv_error_set(err, RV_EINVAL, false,
                            "source url scheme of '%.*s' is not supported (use a local path, "
                            "file://, http:// or https://)",
                            (int)(scheme_end - url) + 3, url);
    }
    src->url = strdup(url);
    return src->url ? 0 : RV_ENOMEM;
}

/* ---- a socket stream with connect and I/O timeouts -------------------- */

/* libgit2 1.5 has no network timeouts of its own: a server that accepts and
 * then stays silent would hold a worker thread forever. This stream replaces
 * libgit2's plain socket stream (its TLS stream is layered on top of it). */
struct rv_stream {
    git_stream parent;
    char *host;
    char *port;
    int fd;
};

static void set_errno_error(const char *what, const char *host, int e)
{
    char ebuf[128];
    git_error_set(GIT_ERROR_NET, "%s '%s': %s", what, host, errstr(e, ebuf, sizeof(ebuf)));
}

static int connect_one(const struct addrinfo *ai, int *fd_out, bool *timed_out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = errno;
            goto out;
        }
        uint64_t deadline = now_ms() + RV_GIT_CONNECT_TIMEOUT_MS;
        for (;;) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                *timed_out = true;
                rc = ETIMEDOUT;
                goto out;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
            int n = poll(&pfd, 1, (int)(deadline - now));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = errno;
                goto out;
            }
            if (n > 0)
                break;
        }
        int soerr = 0;
        socklen_t slen = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0) {
            rc = errno;
            goto out;
        }
        if (soerr != 0) {
            rc = soerr;
            goto out;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        rc = errno;
        goto out;
    }
    struct timeval tv = {.tv_sec = (time_t)(source_io_timeout_ms / 1000),
                         .tv_usec = (suseconds_t)((source_io_timeout_ms % 1000) * 1000)};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        rc = errno;
        goto out;
    }
out:
    if (rc != 0)
        close(fd);
    else
        *fd_out = fd;
    return rc;
}

static int rv_stream_connect(git_stream *stream)
{
    struct rv_stream *st = (struct rv_stream *)stream;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(st->host, st->port, &hints, &res);
    if (gai != 0) {
        git_error_set(GIT_ERROR_NET, "cannot resolve host '%s': %s", st->host, gai_strerror(gai));
        return -1;
    }
    int last = 0;
    bool timed_out = false;
    for (const struct addrinfo *ai = res; ai != NULL && st->fd < 0; ai = ai->ai_next)
        last = connect_one(ai, &st->fd, &timed_out);
    freeaddrinfo(res);
    if (st->fd >= 0)
        return 0;
    if (timed_out && last == ETIMEDOUT) {
        stream_timeouts++;
        git_error_set(GIT_ERROR_NET, "cannot connect to '%s' port %s: timed out after %d ms",
                      st->host, st->port, RV_GIT_CONNECT_TIMEOUT_MS);
    } else {
        set_errno_error("cannot connect to", st->host, last ? last : ECONNREFUSED);
    }
    return -1;
}

static ssize_t rv_stream_read(git_stream *stream, void *data, size_t len)
{
    struct rv_stream *st = (struct rv_stream *)stream;
    ssize_t n;
    do {
        n = recv(st->fd, data, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            stream_timeouts++;
            git_error_set(GIT_ERROR_NET, "no answer from '%s' for %u ms (timed out)", st->host,
                          source_io_timeout_ms);
        } else
            set_errno_error("cannot read from", st->host, errno);
        return -1;
    }
    return n;
}

static ssize_t rv_stream_write(git_stream *stream, const char *data, size_t len, int flags)
{
    (void)flags;
    struct rv_stream *st = (struct rv_stream *)stream;
    ssize_t n;
    do {
        n = send(st->fd, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            stream_timeouts++;
            git_error_set(GIT_ERROR_NET, "'%s' took no data for %u ms (timed out)", st->host,
                          source_io_timeout_ms);
        } else
            set_errno_error("cannot write to", st->host, errno);
        return -1;
    }
    return n;
}

static int rv_stream_close(git_stream *stream)
{
    struct rv_stream *st = (struct rv_stream *)stream;
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    return 0;
}

static void rv_stream_free(git_stream *stream)
{
    struct rv_stream *st = (struct rv_stream *)stream;
    if (st == NULL)
        return;
    rv_stream_close(stream);
    free(st->host);
    free(st->port);
    free(st);
}

static int rv_stream_new(git_stream **out, const char *host, const char *port)
{
    struct rv_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto nomem;
    st->fd = -1;
    st->host = strdup(host);
    st->port = strdup(port);
    if (st->host == NULL || st->port == NULL)
        goto nomem;
    st->parent.version = GIT_STREAM_VERSION;
    st->parent.connect = rv_stream_connect;
    st->parent.read = rv_stream_read;
    st->parent.write = rv_stream_write;
    st->parent.close = rv_stream_close;
    st->parent.free = rv_stream_free;
    *out = &st->parent;
    return 0;
nomem:
    if (st) {
        free(st->host);
        free(st->port);
        free(st);
    }
    git_error_set_oom();
    return -1;
}

int source_global_init(unsigned io_timeout_ms, struct rv_error *err)
{
    int rc = 0;
    if (git_libgit2_init() < 0)
        return rv_error_set(err, RV_EGIT, false, "cannot initialize libgit2: %s", git_msg());
    source_io_timeout_ms = io_timeout_ms ? io_timeout_ms : RV_GIT_IO_TIMEOUT_MS;
    git_stream_registration reg;
    memset(&reg, 0, sizeof(reg));
    reg.version = GIT_STREAM_VERSION;
    reg.init = rv_stream_new;
    if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot install the git socket stream: %s",
                          git_msg());
        goto out;
    }
    if (git_libgit2_opts(GIT_OPT_SET_USER_AGENT, "reeve/" REEVE_VERSION) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot set the git user agent: %s", git_msg());
        goto out;
    }
out:
    if (rc != 0)
        git_libgit2_shutdown();
    return rc;
}

void source_global_shutdown(void)
{
    git_libgit2_shutdown();
}

/* ---- config ------------------------------------------------------------ */

static const char *const forge_names[] = {
    [SOURCE_FORGE_NONE] = "none",
    [SOURCE_FORGE_GITHUB] = "github",
    [SOURCE_FORGE_GITEA] = "gitea",
    [SOURCE_FORGE_GITLAB] = "gitlab",
};

int source_forge_parse(enum source_forge *out, const char *name)
{
    for (size_t i = 0; i < sizeof(forge_names) / sizeof(forge_names[0]); i++) {
        if (name && strcmp(name, forge_names[i]) == 0) {
            *out = (enum source_forge)i;
            return 0;
        }
    }
    return RV_EINVAL;
}

const char *source_forge_name(enum source_forge forge)
{
    if ((size_t)forge < sizeof(forge_names) / sizeof(forge_names[0]))
        return forge_names[forge];
    return "unknown";
}

void source_config_init(struct source_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

const char *source_url(const struct source *src)
{
    return src->url_display;
}

const char *source_main_branch(const struct source *src)
{
    return src->main_branch;
}

/* ---- open / free ------------------------------------------------------- */

static int dir_state(const char *path, bool *exists, bool *empty, struct rv_error *err)
{
    char ebuf[128];
    struct stat st;
    *exists = false;
    *empty = true;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return rv_error_set(err, RV_EIO, false, "cannot access mirror directory '%s': %s", path,
                            errstr(errno, ebuf, sizeof(ebuf)));
    }
    *exists = true;
    if (!S_ISDIR(st.st_mode))
        return rv_error_set(err, RV_EINVAL, false,
                            "mirror directory '%s' is not a directory (choose another path)", path);
    DIR *d = opendir(path);
    if (d == NULL)
        return rv_error_set(err, RV_EIO, false, "cannot read mirror directory '%s': %s", path,
                            errstr(errno, ebuf, sizeof(ebuf)));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            *empty = false;
            break;
        }
    }
    closedir(d);
    return 0;
}

static int mirror_open(struct source *src, struct rv_error *err)
{
    bool exists, empty;
    int rc = dir_state(src->mirror_dir, &exists, &empty, err);
    if (rc != 0)
        return rc;
    if (!exists || empty) {
        git_repository_init_options opts;
        git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
        opts.flags =
            GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
        opts.initial_head = src->main_branch;
        opts.description = "reeve mirror (managed by reeve; do not push here)";
        if (git_repository_init_ext(&src->repo, src->mirror_dir, &opts) < 0)
            return rv_error_set(err, RV_EGIT, false, "cannot create mirror '%s': %s",
                                src->mirror_dir, git_msg());
        log_info("source", "created mirror '%s' for '%s'", src->mirror_dir, src->url_display);
        /* once per mirror, not on every open: sources are opened per work item */
        if (has_prefix(src->url, "http://") &&
            (src->auth != SOURCE_AUTH_NONE || src->url_has_userinfo))
            log_warn("source",
                     "credentials for '%s' are sent over plain http (use https outside tests)",
                     src->url_display);
        return 0;
    }
    if (git_repository_open_bare(&src->repo, src->mirror_dir) < 0)
        return rv_error_set(err, RV_EINVAL, false,
                            "mirror directory '%s' is not a bare git repository: %s (remove it "
                            "or choose another directory)",
                            src->mirror_dir, git_msg());
    return 0;
}

int source_open(struct source **out, const struct source_config *cfg, struct rv_error *err)
{
    int rc = 0;
    struct source *src = NULL;
    *out = NULL;
    if (cfg->mirror_dir == NULL || cfg->mirror_dir[0] == '\0') {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "source mirror directory is not set (set a directory reeve owns)");
        goto out;
    }
    if ((size_t)cfg->forge >= sizeof(forge_names) / sizeof(forge_names[0])) {
        rc = rv_error_set(err, RV_EINVAL, false, "unknown forge kind %d", (int)cfg->forge);
        goto out;
    }
    src = calloc(1, sizeof(*src));
    if (src == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory opening the git source");
        goto out;
    }
    src->forge = cfg->forge;
    src->auth = cfg->auth;
    src->fetch_timeout_ms = cfg->fetch_timeout_ms ? cfg->fetch_timeout_ms : RV_GIT_FETCH_TIMEOUT_MS;
    rc = url_prepare(src, cfg->url, err);
    if (rc != 0) {
        if (rc == RV_ENOMEM)
            rv_error_set(err, RV_ENOMEM, false, "out of memory opening the git source");
        goto out;
    }

    const char *branch = (cfg->main_branch && cfg->main_branch[0]) ? cfg->main_branch : "main";
    src->main_branch = strdup(branch);
    src->mirror_dir = strdup(cfg->mirror_dir);
    size_t reflen = strlen("refs/heads/") + strlen(branch) + 1;
    src->main_ref = malloc(reflen);
    if (!src->main_branch || !src->mirror_dir || !src->main_ref) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory opening the git source");
        goto out;
    }
    snprintf(src->main_ref, reflen, "refs/heads/%s", branch);
    int valid = 0;
    if (git_reference_name_is_valid(&valid, src->main_ref) < 0 || !valid ||
        has_prefix(branch, "refs/")) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "main branch name '%s' is not a valid branch name (e.g. \"main\")",
                          branch);
        goto out;
    }

    switch (cfg->auth) {
    case SOURCE_AUTH_NONE:
        break;
    case SOURCE_AUTH_TOKEN:
    case SOURCE_AUTH_BASIC:
        if (cfg->secret == NULL || cfg->secret[0] == '\0') {
            rc = rv_error_set(
                err, RV_EINVAL, false, "source '%s': the %s is empty (check the secret reference)",
                src->url_display, cfg->auth == SOURCE_AUTH_TOKEN ? "token" : "password");
            goto out;
        }
        if (cfg->auth == SOURCE_AUTH_BASIC && (cfg->username == NULL || !cfg->username[0])) {
            rc = rv_error_set(err, RV_EINVAL, false, "source '%s': basic auth needs a username",
                              src->url_display);
            goto out;
        }
        if (cfg->username && cfg->username[0])
            src->username = strdup(cfg->username);
        else
            src->username = strdup(cfg->forge == SOURCE_FORGE_GITLAB ? "oauth2" : "x-access-token");
        src->secret = strdup(cfg->secret);
        if (src->username == NULL || src->secret == NULL) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory opening the git source");
            goto out;
        }
        break;
    default:
        rc = rv_error_set(err, RV_EINVAL, false, "unknown auth kind %d", (int)cfg->auth);
        goto out;
    }

    rc = mirror_open(src, err);
    if (rc != 0)
        goto out;
    *out = src;
    src = NULL;
out:
    source_free(src);
    return rc;
}

void source_free(struct source *src)
{
    if (src == NULL)
        return;
    git_repository_free(src->repo);
    secret_wipe_free(src->url); /* may hold user info */
    free(src->url_display);
    free(src->mirror_dir);
    free(src->main_branch);
    free(src->main_ref);
    free(src->username);
    secret_wipe_free(src->secret);
    free(src);
}

/* ---- ref snapshots ----------------------------------------------------- */

struct ref_entry {
    uint64_t pull;
    git_oid oid;
};

struct ref_snap {
    bool has_main;
    git_oid main;
    struct ref_entry *pulls; /* sorted by number */
    size_t len;
    size_t cap;
};

static void ref_snap_release(struct ref_snap *s)
{
    free(s->pulls);
    memset(s, 0, sizeof(*s));
}

/* "12" -> 12; anything but a plain positive decimal number is rejected. */
static bool parse_pull_number(const char *s, uint64_t *out)
{
    if (s[0] < '1' || s[0] > '9' || strlen(s) > 18)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static int cmp_ref_entry(const void *a, const void *b)
{
    const struct ref_entry *x = a, *y = b;
    return (x->pull > y->pull) - (x->pull < y->pull);
}

static int ref_snap_take(struct source *src, struct ref_snap *s, struct rv_error *err)
{
    int rc = 0;
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    memset(s, 0, sizeof(*s));

    int grc = git_reference_name_to_id(&s->main, src->repo, src->main_ref);
    if (grc == 0)
        s->has_main = true;
    else if (grc != GIT_ENOTFOUND) {
        rc = rv_error_set(err, RV_EGIT, true, "cannot read '%s' in mirror '%s': %s", src->main_ref,
                          src->mirror_dir, git_msg());
        goto out;
    }
    if (git_reference_iterator_glob_new(&it, src->repo, SOURCE_PULL_NS "*") < 0) {
        rc = rv_error_set(err, RV_EGIT, true, "cannot list refs in mirror '%s': %s",
                          src->mirror_dir, git_msg());
        goto out;
    }
    while ((grc = git_reference_next(&ref, it)) == 0) {
        const char *name = git_reference_name(ref) + strlen(SOURCE_PULL_NS);
        const git_oid *target = git_reference_target(ref);
        uint64_t n;
        if (target == NULL || !parse_pull_number(name, &n)) {
            log_debug("source", "ignoring ref '%s' in mirror '%s'", git_reference_name(ref),
                      src->mirror_dir);
            git_reference_free(ref);
            ref = NULL;
            continue;
        }
        if (s->len == s->cap) {
            if (s->len >= RV_GIT_REFS_MAX) {
                rc = rv_error_set(err, RV_ELIMIT, false,
                                  "'%s' has more than %d pull request refs (use forge 'none' "
                                  "or a smaller repository)",
                                  src->url_display, RV_GIT_REFS_MAX);
                goto out;
            }
            size_t cap = s->cap ? s->cap * 2 : 64;
            struct ref_entry *p = realloc(s->pulls, cap * sizeof(*p));
            if (p == NULL) {
                rc = rv_error_set(err, RV_ENOMEM, false, "out of memory listing refs");
                goto out;
            }
            s->pulls = p;
            s->cap = cap;
        }
        s->pulls[s->len].pull = n;
        git_oid_cpy(&s->pulls[s->len].oid, target);
        s->len++;
        git_reference_free(ref);
        ref = NULL;
    }
    if (grc != GIT_ITEROVER) {
        rc = rv_error_set(err, RV_EGIT, true, "cannot list refs in mirror '%s': %s",
                          src->mirror_dir, git_msg());
        goto out;
    }
    if (s->len > 1)
        qsort(s->pulls, s->len, sizeof(*s->pulls), cmp_ref_entry);
out:
    git_reference_free(ref);
    git_reference_iterator_free(it);
    if (rc != 0)
        ref_snap_release(s);
    return rc;
}

static int result_push(struct source_fetch_result *res, size_t *cap, enum source_ref_kind kind,
                       uint64_t pull, const git_oid *old_oid, const git_oid *new_oid)
{
    if (res->nchanges == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct source_ref_change *p = realloc(res->changes, ncap * sizeof(*p));
        if (p == NULL)
            return RV_ENOMEM;
        res->changes = p;
        *cap = ncap;
    }
    struct source_ref_change *c = &res->changes[res->nchanges++];
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->pull = pull;
    if (old_oid)
        git_oid_cpy(&c->old_oid, old_oid);
    if (new_oid)
        git_oid_cpy(&c->new_oid, new_oid);
    return 0;
}

static int ref_snap_diff(struct source_fetch_result *res, const struct ref_snap *a,
                         const struct ref_snap *b)
{
    size_t cap = 0;
    int rc = 0;
    if (a->has_main != b->has_main || (a->has_main && !git_oid_equal(&a->main, &b->main))) {
        rc = result_push(res, &cap, SOURCE_REF_MAIN, 0, a->has_main ? &a->main : NULL,
                         b->has_main ? &b->main : NULL);
        if (rc != 0)
            return rc;
    }
    size_t i = 0, j = 0;
    while (rc == 0 && (i < a->len || j < b->len)) {
        if (j == b->len || (i < a->len && a->pulls[i].pull < b->pulls[j].pull)) {
            rc = result_push(res, &cap, SOURCE_REF_PULL, a->pulls[i].pull, &a->pulls[i].oid, NULL);
            i++;
        } else if (i == a->len || b->pulls[j].pull < a->pulls[i].pull) {
            rc = result_push(res, &cap, SOURCE_REF_PULL, b->pulls[j].pull, NULL, &b->pulls[j].oid);
            j++;
        } else {
            if (!git_oid_equal(&a->pulls[i].oid, &b->pulls[j].oid))
                rc = result_push(res, &cap, SOURCE_REF_PULL, a->pulls[i].pull, &a->pulls[i].oid,
                                 &b->pulls[j].oid);
            i++;
            j++;
        }
    }
    return rc;
}

void source_fetch_result_init(struct source_fetch_result *res)
{
    memset(res, 0, sizeof(*res));
}

void source_fetch_result_release(struct source_fetch_result *res)
{
    free(res->changes);
    source_fetch_result_init(res);
}

void source_ref_change_name(char *out, size_t size, const struct source_ref_change *ch)
{
    if (ch->kind == SOURCE_REF_MAIN)
        snprintf(out, size, "main");
    else
        snprintf(out, size, "pull/%llu", (unsigned long long)ch->pull);
}

/* ---- fetch ------------------------------------------------------------- */

struct fetch_ctx {
    struct source *src;
    uint64_t deadline_ms;
    unsigned auth_attempts;
    bool auth_rejected;    /* credentials sent and refused */
    bool auth_missing;     /* server asked, we have none */
    bool auth_unsupported; /* server wants something other than user+password */
    bool timed_out;
    unsigned long stream_timeouts; /* the thread's count when the fetch began */
};

static bool fetch_past_deadline(struct fetch_ctx *ctx)
{
    if (now_ms() >= ctx->deadline_ms)
        ctx->timed_out = true;
    return ctx->timed_out;
}

static int fetch_credentials(git_credential **out, const char *url, const char *username_from_url,
                             unsigned int allowed_types, void *payload)
{
    (void)url;
    (void)username_from_url;
    struct fetch_ctx *ctx = payload;
    struct source *src = ctx->src;
    if (fetch_past_deadline(ctx))
        return GIT_EUSER;
    if (src->auth == SOURCE_AUTH_NONE) {
        ctx->auth_missing = true;
        return GIT_EUSER;
    }
    if (!(allowed_types & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
        ctx->auth_unsupported = true;
        return GIT_EUSER;
    }
    if (ctx->auth_attempts >= RV_GIT_AUTH_ATTEMPTS) {
        ctx->auth_rejected = true;
        return GIT_EUSER;
    }
    ctx->auth_attempts++;
    return git_credential_userpass_plaintext_new(out, src->username, src->secret);
}

static int fetch_transfer_progress(const git_indexer_progress *stats, void *payload)
{
    (void)stats;
    return fetch_past_deadline(payload) ? GIT_EUSER : 0;
}

static int fetch_sideband(const char *str, int len, void *payload)
{
    (void)str;
    (void)len;
    return fetch_past_deadline(payload) ? GIT_EUSER : 0;
}

static int fetch_update_tips(const char *refname, const git_oid *a, const git_oid *b, void *payload)
{
    (void)refname;
    (void)a;
    (void)b;
    return fetch_past_deadline(payload) ? GIT_EUSER : 0;
}

static int fetch_error(struct source *src, const struct fetch_ctx *ctx, int grc,
                       struct rv_error *err)
{
    const char *url = src->url_display;
    if (ctx->timed_out)
        return rv_error_set(err, RV_ETIMEOUT, true,
                            "fetching '%s' took longer than %u ms (the server or the link is "
                            "slow; retrying)",
                            url, src->fetch_timeout_ms);
    if (stream_timeouts != ctx->stream_timeouts)
        return rv_error_set(err, RV_ETIMEOUT, true,
                            "cannot fetch '%s': the server did not answer for %u ms (retrying)",
                            url, source_io_timeout_ms);
    if (ctx->auth_rejected) {
        if (src->auth == SOURCE_AUTH_BASIC)
            return rv_error_set(err, RV_EAUTH, false,
                                "authentication failed for '%s' (check the username and "
                                "password)",
                                url);
        return rv_error_set(err, RV_EAUTH, false,
                            "authentication failed for '%s' (check the token)", url);
    }
    if (ctx->auth_missing) {
        if (src->url_has_userinfo)
            return rv_error_set(err, RV_EAUTH, false,
                                "authentication failed for '%s' (check the credentials in the "
                                "url, or configure a token)",
                                url);
        return rv_error_set(err, RV_EAUTH, false,
                            "'%s' requires authentication (configure a token for the source)", url);
    }
    if (ctx->auth_unsupported)
        return rv_error_set(err, RV_EAUTH, false,
                            "'%s' asks for credentials other than a username and token (use an "
                            "http(s) url with a token)",
                            url);
    const char *msg = git_msg();
    int klass = git_klass();
    if (grc == GIT_ELOCKED)
        return rv_error_set(err, RV_EBUSY, true,
                            "mirror '%s' is locked by another git process: %s (retrying)",
                            src->mirror_dir, msg);
    if (strstr(msg, "status code: 403"))
        return rv_error_set(err, RV_EAUTH, false,
                            "access to '%s' was denied (403; check the token's permissions)", url);
    if (strstr(msg, "status code: 404"))
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "repository '%s' was not found (404; check the url, and a token for "
                            "a private repository)",
                            url);
    if (klass == GIT_ERROR_NET || klass == GIT_ERROR_HTTP || klass == GIT_ERROR_SSL)
        return rv_error_set(err, RV_EUNAVAIL, true, "cannot fetch '%s': %s (retrying)", url, msg);
    return rv_error_set(err, RV_EGIT, true, "cannot fetch '%s': %s", url, msg);
}

static int lock_mirror(struct source *src, int *fd_out, struct rv_error *err)
{
    char ebuf[128];
    char path[RV_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", src->mirror_dir, SOURCE_LOCK_FILE);
    if (n < 0 || (size_t)n >= sizeof(path))
        return rv_error_set(err, RV_ELIMIT, false, "mirror path '%s' is too long", src->mirror_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return rv_error_set(err, RV_EIO, false, "cannot open '%s': %s", path,
                            errstr(errno, ebuf, sizeof(ebuf)));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return rv_error_set(err, RV_EBUSY, true,
                                "another fetch into mirror '%s' is running (retrying)",
                                src->mirror_dir);
        return rv_error_set(err, RV_EIO, false, "cannot lock '%s': %s", path,
                            errstr(e, ebuf, sizeof(ebuf)));
    }
    *fd_out = fd;
    return 0;
}

static int drop_pull_refs(struct source *src, struct rv_error *err)
{
    int rc = 0, grc;
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    if (git_reference_iterator_glob_new(&it, src->repo, SOURCE_PULL_NS "*") < 0) {
        rc = rv_error_set(err, RV_EGIT, true, "cannot list refs in mirror '%s': %s",
                          src->mirror_dir, git_msg());
        goto out;
    }
    while ((grc = git_reference_next(&ref, it)) == 0) {
        if (git_reference_delete(ref) < 0) {
            rc = rv_error_set(err, RV_EGIT, true, "cannot delete '%s' in mirror '%s': %s",
                              git_reference_name(ref), src->mirror_dir, git_msg());
            goto out;
        }
        git_reference_free(ref);
        ref = NULL;
    }
    if (grc != GIT_ITEROVER)
        rc = rv_error_set(err, RV_EGIT, true, "cannot list refs in mirror '%s': %s",
                          src->mirror_dir, git_msg());
out:
    git_reference_free(ref);
    git_reference_iterator_free(it);
    return rc;
}

int source_fetch(struct source *src, struct source_fetch_result *res, struct rv_error *err)
{
    int rc = 0;
    int lock_fd = -1;
    git_remote *remote = NULL;
    struct ref_snap before = {0}, after = {0};
    char *specs[2] = {NULL, NULL};
    size_t nspecs = 0;
    bool main_missing = false;

    source_fetch_result_release(res);
    rc = lock_mirror(src, &lock_fd, err);
    if (rc != 0)
        goto out;
    rc = ref_snap_take(src, &before, err);
    if (rc != 0)
        goto out;

    size_t speclen = 2 * strlen(src->main_ref) + 3;
    specs[nspecs] = malloc(speclen);
    if (specs[nspecs] == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory fetching '%s'", src->url_display);
        goto out;
    }
    snprintf(specs[nspecs++], speclen, "+%s:%s", src->main_ref, src->main_ref);
    if (src->forge == SOURCE_FORGE_GITHUB || src->forge == SOURCE_FORGE_GITEA)
        specs[nspecs++] = strdup("+refs/pull/*/head:" SOURCE_PULL_NS "*");
    else if (src->forge == SOURCE_FORGE_GITLAB)
        specs[nspecs++] = strdup("+refs/merge-requests/*/head:" SOURCE_PULL_NS "*");
    if (specs[nspecs - 1] == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory fetching '%s'", src->url_display);
        goto out;
    }

    if (!src->url_is_network) {
        /* libgit2 calls a missing local path an "unsupported URL protocol" */
        const char *path =
            has_prefix(src->url, "file://") ? src->url + strlen("file://") : src->url;
        struct stat st;
        if (stat(path, &st) != 0) {
            rc = rv_error_set(err, RV_ENOTFOUND, false,
                              "repository '%s' does not exist (check the source url)",
                              src->url_display);
            goto out;
        }
    }
    /* Anonymous (nothing written to the mirror's config), with no url
     * rewriting from git config: the configured url is the one fetched. */
    git_remote_create_options ropts;
    git_remote_create_options_init(&ropts, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ropts.repository = src->repo;
    ropts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, src->url, &ropts) < 0) {
        rc = rv_error_set(err, RV_EINVAL, false, "cannot use '%s' as a git remote: %s",
                          src->url_display, git_msg());
        goto out;
    }

    uint64_t start = now_ms();
    struct fetch_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.src = src;
    ctx.deadline_ms = start + src->fetch_timeout_ms;
    ctx.stream_timeouts = stream_timeouts;

    git_fetch_options opts;
    git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
    opts.prune = GIT_FETCH_PRUNE;
    opts.update_fetchhead = 0;
    opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    opts.callbacks.credentials = fetch_credentials;
    opts.callbacks.transfer_progress = fetch_transfer_progress;
    opts.callbacks.sideband_progress = fetch_sideband;
    opts.callbacks.update_tips = fetch_update_tips;
    opts.callbacks.payload = &ctx;
    git_strarray refspecs = {specs, nspecs};

    int grc = git_remote_fetch(remote, &refspecs, &opts, NULL);
    res->duration_ms = now_ms() - start;
    if (grc < 0) {
        rc = fetch_error(src, &ctx, grc, err);
        scrub_secret(err, src->secret);
        log_warn("source", "fetch of '%s' failed after %llu ms: %s", src->url_display,
                 (unsigned long long)res->duration_ms, err ? err->msg : rv_strerror(rc));
        goto out;
    }
    if (src->forge == SOURCE_FORGE_NONE) {
        /* no refspec covers the pull namespace, so prune would not clean it
         * after a switch from a forge to "none": drop it here */
        rc = drop_pull_refs(src, err);
        if (rc != 0)
            goto out;
    }
    const git_indexer_progress *stats = git_remote_stats(remote);
    if (stats) {
        res->received_bytes = stats->received_bytes;
        res->received_objects = stats->received_objects;
    }

    rc = ref_snap_take(src, &after, err);
    if (rc != 0)
        goto out;
    if (ref_snap_diff(res, &before, &after) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory fetching '%s'", src->url_display);
        goto out;
    }
    log_info("source", "fetched '%s' in %llu ms: %zu ref(s) changed, %u object(s), %llu bytes",
             src->url_display, (unsigned long long)res->duration_ms, res->nchanges,
             res->received_objects, (unsigned long long)res->received_bytes);
    if (!after.has_main) {
        main_missing = true;
        rc = rv_error_set(err, RV_ENOTFOUND, false,
                          "'%s' has no branch '%s' (check the main branch name)", src->url_display,
                          src->main_branch);
        goto out;
    }
out:
    if (rc != 0 && !main_missing) {
        uint64_t duration = res->duration_ms; /* failed fetches are timed too */
        source_fetch_result_release(res);
        res->duration_ms = duration;
    }
    git_remote_free(remote);
    for (size_t i = 0; i < nspecs; i++)
        free(specs[i]);
    ref_snap_release(&before);
    ref_snap_release(&after);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}

/* ---- resolve ----------------------------------------------------------- */

int source_resolve(struct source *src, const char *rev, git_oid *out, struct rv_error *err)
{
    int rc = 0;
    git_object *obj = NULL, *peeled = NULL;
    char refname[64 + RV_GIT_REVSPEC_MAX];
    const char *spec = rev;
    size_t len = rev ? strlen(rev) : 0;
    uint64_t n;

    if (len == 0 || len > RV_GIT_REVSPEC_MAX) {
        rc = rv_error_set(err, RV_EINVAL, false, "revision must be 1 to %d characters (got %zu)",
                          RV_GIT_REVSPEC_MAX, len);
        goto out;
    }
    if (strcmp(rev, "main") == 0 || strcmp(rev, src->main_branch) == 0) {
        spec = src->main_ref;
    } else if (has_prefix(rev, "pull/") && parse_pull_number(rev + 5, &n)) {
        snprintf(refname, sizeof(refname), SOURCE_PULL_NS "%llu", (unsigned long long)n);
        spec = refname;
    }
    int grc = git_revparse_single(&obj, src->repo, spec);
    if (grc == GIT_ENOTFOUND || grc == GIT_EAMBIGUOUS || grc == GIT_EINVALIDSPEC) {
        rc = rv_error_set(err, grc == GIT_ENOTFOUND ? RV_ENOTFOUND : RV_EINVAL, false,
                          "revision '%s' %s in the mirror of '%s' (fetch first, or check the "
                          "name)",
                          rev,
                          grc == GIT_ENOTFOUND    ? "not found"
                          : grc == GIT_EAMBIGUOUS ? "is ambiguous"
                                                  : "is not valid",
                          src->url_display);
        goto out;
    }
    if (grc < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot resolve '%s': %s", rev, git_msg());
        goto out;
    }
    if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
        rc = rv_error_set(err, RV_EINVAL, false, "revision '%s' is not a commit", rev);
        goto out;
    }
    git_oid_cpy(out, git_object_id(peeled));
out:
    git_object_free(peeled);
    git_object_free(obj);
    return rc;
}

int source_merge_base(struct source *src, const git_oid *a, const git_oid *b, git_oid *out,
                      struct rv_error *err)
{
    char sa[GIT_OID_HEXSZ + 1], sb[GIT_OID_HEXSZ + 1];
    int grc = git_merge_base(out, src->repo, a, b);
    if (grc == 0)
        return 0;
    oid_short(sa, a);
    oid_short(sb, b);
    if (grc == GIT_ENOTFOUND)
        return rv_error_set(err, RV_ENOTFOUND, false,
                            "commits %s and %s have no common ancestor (is the pull request "
                            "based on another history?)",
                            sa, sb);
    return rv_error_set(err, RV_EGIT, false, "cannot find the merge base of %s and %s: %s", sa, sb,
                        git_msg());
}

/* ---- paths and file lists --------------------------------------------- */

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len > n && memcmp(s + len - n, suffix, n) == 0;
}

bool source_is_spec_path(const char *path, enum spec_file_kind *kind)
{
    enum spec_file_kind k;
    const char *rest;
    if (has_prefix(path, "clusters/")) {
        k = SPEC_FILE_CLUSTERS;
        rest = path + strlen("clusters/");
    } else if (has_prefix(path, "policies/")) {
        k = SPEC_FILE_POLICIES;
        rest = path + strlen("policies/");
    } else {
        return false;
    }
    /* every component non-empty and not hidden */
    const char *comp = rest;
    for (;;) {
        const char *slash = strchr(comp, '/');
        if (comp[0] == '\0' || comp[0] == '.' || comp[0] == '/')
            return false;
        if (slash == NULL)
            break;
        comp = slash + 1;
    }
    size_t len = strlen(comp);
    bool ok = ends_with(comp, len, ".yaml") || ends_with(comp, len, ".yml") ||
              (k == SPEC_FILE_CLUSTERS && ends_with(comp, len, ".tf.json"));
    if (ok && kind)
        *kind = k;
    return ok;
}

/* Directories between the top folder and the file: clusters/a.yaml -> 0. */
static size_t spec_path_depth(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += *p == '/';
    return n ? n - 1 : 0;
}

const char *source_change_name(enum source_change change)
{
    switch (change) {
    case SOURCE_ADDED:
        return "added";
    case SOURCE_MODIFIED:
        return "modified";
    case SOURCE_DELETED:
        return "deleted";
    }
    return "unknown";
}

void source_file_list_init(struct source_file_list *list)
{
    memset(list, 0, sizeof(*list));
}

void source_file_list_release(struct source_file_list *list)
{
    for (size_t i = 0; i < list->len; i++)
        free(list->items[i].path);
    free(list->items);
    source_file_list_init(list);
}

static int file_list_push(struct source_file_list *list, const char *path, enum spec_file_kind kind,
                          enum source_change change, const git_oid *blob)
{
    if (list->len == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        struct source_file *p = realloc(list->items, cap * sizeof(*p));
        if (p == NULL)
            return RV_ENOMEM;
        list->items = p;
        list->cap = cap;
    }
    struct source_file *f = &list->items[list->len];
    memset(f, 0, sizeof(*f));
    f->path = strdup(path);
    if (f->path == NULL)
        return RV_ENOMEM;
    f->kind = kind;
    f->change = change;
    if (blob)
        git_oid_cpy(&f->blob, blob);
    list->len++;
    return 0;
}

static int cmp_source_file(const void *a, const void *b)
{
    const struct source_file *x = a, *y = b;
    return strcmp(x->path, y->path);
}

static bool is_blob_mode(uint32_t mode)
{
    return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE;
}

static int commit_tree(struct source *src, const git_oid *commit, git_tree **tree,
                       struct rv_error *err)
{
    git_commit *c = NULL;
    char hex[GIT_OID_HEXSZ + 1];
    int grc = git_commit_lookup(&c, src->repo, commit);
    if (grc < 0) {
        oid_short(hex, commit);
        if (grc == GIT_ENOTFOUND)
            return rv_error_set(err, RV_ENOTFOUND, false,
                                "commit %s is not in the mirror of '%s' (fetch first)", hex,
                                src->url_display);
        return rv_error_set(err, RV_EGIT, false, "cannot read commit %s: %s", hex, git_msg());
    }
    grc = git_commit_tree(tree, c);
    git_commit_free(c);
    if (grc < 0) {
        oid_short(hex, commit);
        return rv_error_set(err, RV_EGIT, false, "cannot read the tree of commit %s: %s", hex,
                            git_msg());
    }
    return 0;
}

int source_changed_files(struct source *src, const git_oid *base, const git_oid *head,
                         struct source_file_list *list, struct rv_error *err)
{
    int rc = 0;
    git_tree *old_tree = NULL, *new_tree = NULL;
    git_diff *diff = NULL;

    source_file_list_release(list);
    rc = commit_tree(src, base, &old_tree, err);
    if (rc != 0)
        goto out;
    rc = commit_tree(src, head, &new_tree, err);
    if (rc != 0)
        goto out;

    git_diff_options opts;
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    char top_clusters[] = "clusters", top_policies[] = "policies";
    char *paths[] = {top_clusters, top_policies};
    opts.pathspec.strings = paths;
    opts.pathspec.count = 2;
    if (git_diff_tree_to_tree(&diff, src->repo, old_tree, new_tree, &opts) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot compare trees: %s", git_msg());
        goto out;
    }
    size_t n = git_diff_num_deltas(diff);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *d = git_diff_get_delta(diff, i);
        enum spec_file_kind kind = SPEC_FILE_CLUSTERS;
        bool old_spec =
            is_blob_mode(d->old_file.mode) && source_is_spec_path(d->old_file.path, NULL);
        bool new_spec =
            is_blob_mode(d->new_file.mode) && source_is_spec_path(d->new_file.path, NULL);
        if (!old_spec && !new_spec)
            continue;
        if (old_spec && new_spec && git_oid_equal(&d->old_file.id, &d->new_file.id))
            continue; /* mode-only change */
        const char *path = new_spec ? d->new_file.path : d->old_file.path;
        source_is_spec_path(path, &kind);
        if (spec_path_depth(path) > RV_WALK_DEPTH_MAX) {
            rc = rv_error_set(err, RV_ELIMIT, false,
                              "%s: more than %d directories deep below the top folder "
                              "(flatten the folder layout)",
                              path, RV_WALK_DEPTH_MAX);
            goto out;
        }
        if (list->len >= RV_SPEC_FILES_MAX) {
            rc = rv_error_set(err, RV_ELIMIT, false,
                              "more than %d spec files changed (split the change)",
                              RV_SPEC_FILES_MAX);
            goto out;
        }
        enum source_change change = old_spec && new_spec ? SOURCE_MODIFIED
                                    : new_spec           ? SOURCE_ADDED
                                                         : SOURCE_DELETED;
        if (file_list_push(list, path, kind, change, new_spec ? &d->new_file.id : NULL) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory listing changed files");
            goto out;
        }
    }
    if (list->len > 1)
        qsort(list->items, list->len, sizeof(*list->items), cmp_source_file);
out:
    if (rc != 0)
        source_file_list_release(list);
    git_diff_free(diff);
    git_tree_free(new_tree);
    git_tree_free(old_tree);
    return rc;
}

struct walk_ctx {
    const char *top; /* "clusters" or "policies" */
    struct source_file_list *list;
    struct rv_error *err;
    int rc;
};

static int walk_cb(const char *root, const git_tree_entry *entry, void *payload)
{
    struct walk_ctx *w = payload;
    const char *name = git_tree_entry_name(entry);
    if (name[0] == '.')
        return 1; /* hidden: skip it and what is below */
    git_filemode_t mode = git_tree_entry_filemode(entry);
    if (mode == GIT_FILEMODE_TREE) {
        size_t depth = 1;
        for (const char *p = root; *p; p++)
            depth += *p == '/';
        if (depth > RV_WALK_DEPTH_MAX) {
            w->rc = rv_error_set(w->err, RV_ELIMIT, false,
                                 "%s/%s%s/: more than %d directories deep below '%s/' (flatten "
                                 "the folder layout)",
                                 w->top, root, name, RV_WALK_DEPTH_MAX, w->top);
            return -1;
        }
        return 0;
    }
    if (!is_blob_mode(mode))
        return 0; /* symlinks and submodules are not spec files */
    char path[RV_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s%s", w->top, root, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        w->rc = rv_error_set(w->err, RV_ELIMIT, false,
                             "%s/%s...: path longer than %d characters (shorten it)", w->top, root,
                             RV_PATH_MAX);
        return -1;
    }
    enum spec_file_kind kind;
    if (!source_is_spec_path(path, &kind))
        return 0;
    if (w->list->len >= RV_SPEC_FILES_MAX) {
        w->rc = rv_error_set(w->err, RV_ELIMIT, false,
                             "more than %d spec files below clusters/ and policies/ (split the "
                             "repository)",
                             RV_SPEC_FILES_MAX);
        return -1;
    }
    if (file_list_push(w->list, path, kind, SOURCE_ADDED, git_tree_entry_id(entry)) != 0) {
        w->rc = rv_error_set(w->err, RV_ENOMEM, false, "out of memory listing spec files");
        return -1;
    }
    return 0;
}

int source_list_spec_files(struct source *src, const git_oid *commit, struct source_file_list *list,
                           struct rv_error *err)
{
    static const char *const tops[] = {"clusters", "policies"};
    int rc = 0;
    git_tree *tree = NULL, *sub = NULL;
    git_tree_entry *entry = NULL;

    source_file_list_release(list);
    rc = commit_tree(src, commit, &tree, err);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < 2; i++) {
        int grc = git_tree_entry_bypath(&entry, tree, tops[i]);
        if (grc == GIT_ENOTFOUND)
            continue;
        if (grc < 0) {
            rc = rv_error_set(err, RV_EGIT, false, "cannot read '%s/': %s", tops[i], git_msg());
            goto out;
        }
        if (git_tree_entry_filemode(entry) != GIT_FILEMODE_TREE) {
            git_tree_entry_free(entry);
            entry = NULL;
            continue;
        }
        if (git_tree_lookup(&sub, src->repo, git_tree_entry_id(entry)) < 0) {
            rc = rv_error_set(err, RV_EGIT, false, "cannot read '%s/': %s", tops[i], git_msg());
            goto out;
        }
        struct walk_ctx w = {.top = tops[i], .list = list, .err = err, .rc = 0};
        grc = git_tree_walk(sub, GIT_TREEWALK_PRE, walk_cb, &w);
        if (w.rc != 0) {
            rc = w.rc;
            goto out;
        }
        if (grc < 0) {
            rc = rv_error_set(err, RV_EGIT, false, "cannot walk '%s/': %s", tops[i], git_msg());
            goto out;
        }
        git_tree_free(sub);
        sub = NULL;
        git_tree_entry_free(entry);
        entry = NULL;
    }
    if (list->len > 1)
        qsort(list->items, list->len, sizeof(*list->items), cmp_source_file);
out:
    if (rc != 0)
        source_file_list_release(list);
    git_tree_entry_free(entry);
    git_tree_free(sub);
    git_tree_free(tree);
    return rc;
}

/* Push clusters/<dir>/<name> when sub (the tree of clusters/<dir>) has a
 * regular file called name. */
static int named_in(struct source *src, const git_tree_entry *dir, const char *name,
                    struct source_file_list *list, struct rv_error *err)
{
    git_tree *sub = NULL;
    char path[RV_PATH_MAX];
    const char *dname = git_tree_entry_name(dir);
    if (git_tree_entry_filemode(dir) != GIT_FILEMODE_TREE || dname[0] == '.')
        return 0;
    if (git_tree_lookup(&sub, src->repo, git_tree_entry_id(dir)) < 0)
        return rv_error_set(err, RV_EGIT, false, "cannot read 'clusters/%s/': %s", dname,
                            git_msg());
    const git_tree_entry *f = git_tree_entry_byname(sub, name);
    int rc = 0;
    if (f && is_blob_mode((uint32_t)git_tree_entry_filemode(f))) {
        if (list->len >= RV_SPEC_FILES_MAX)
            rc = rv_error_set(err, RV_ELIMIT, false, "more than %d '%s' files below clusters/",
                              RV_SPEC_FILES_MAX, name);
        else if (snprintf(path, sizeof(path), "clusters/%s/%s", dname, name) >= (int)sizeof(path))
            rc = rv_error_set(err, RV_ELIMIT, false, "path 'clusters/%s/%s' is too long", dname,
                              name);
        else if (file_list_push(list, path, SPEC_FILE_CLUSTERS, SOURCE_ADDED,
                                git_tree_entry_id(f)) != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory listing '%s' files", name);
    }
    git_tree_free(sub);
    return rc;
}

int source_list_named_files(struct source *src, const git_oid *commit, const char *name,
                            struct source_file_list *list, struct rv_error *err)
{
    git_tree *tree = NULL, *top = NULL;
    git_tree_entry *entry = NULL;
    source_file_list_release(list);
    int rc = commit_tree(src, commit, &tree, err);
    if (rc != 0)
        goto out;
    int grc = git_tree_entry_bypath(&entry, tree, "clusters");
    if (grc == GIT_ENOTFOUND || (grc == 0 && git_tree_entry_filemode(entry) != GIT_FILEMODE_TREE))
        goto out;
    if (grc < 0 || git_tree_lookup(&top, src->repo, git_tree_entry_id(entry)) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot read 'clusters/': %s", git_msg());
        goto out;
    }
    for (size_t i = 0; i < git_tree_entrycount(top) && rc == 0; i++)
        rc = named_in(src, git_tree_entry_byindex(top, i), name, list, err);
    if (rc == 0 && list->len > 1)
        qsort(list->items, list->len, sizeof(*list->items), cmp_source_file);
out:
    if (rc != 0)
        source_file_list_release(list);
    git_tree_entry_free(entry);
    git_tree_free(top);
    git_tree_free(tree);
    return rc;
}

/* ---- reading files ----------------------------------------------------- */

static int check_rel_path(const char *path, struct rv_error *err)
{
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= RV_PATH_MAX)
        return rv_error_set(err, RV_EINVAL, false, "file path must be 1 to %d characters",
                            RV_PATH_MAX - 1);
    if (path[0] == '/')
        return rv_error_set(err, RV_EINVAL, false,
                            "file path '%s' must be relative to the repository root", path);
    const char *comp = path;
    for (;;) {
        size_t n = strcspn(comp, "/");
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
            return rv_error_set(err, RV_EINVAL, false,
                                "file path '%s' has an empty, '.' or '..' component", path);
        if (comp[n] == '\0')
            break;
        comp += n + 1;
    }
    return 0;
}

/* Read path from tree into out. When the blob is over the limit, *too_big
 * gets its size and the return is RV_ELIMIT. */
static int read_at_tree(struct source *src, git_tree *tree, const git_oid *commit, const char *path,
                        struct buf *out, size_t *too_big, struct rv_error *err)
{
    int rc = 0;
    git_tree_entry *entry = NULL;
    git_odb *odb = NULL;
    git_blob *blob = NULL;
    char hex[GIT_OID_HEXSZ + 1];

    buf_clear(out);
    oid_short(hex, commit);
    int grc = git_tree_entry_bypath(&entry, tree, path);
    if (grc == GIT_ENOTFOUND) {
        rc = rv_error_set(err, RV_ENOTFOUND, false, "'%s' does not exist at commit %s", path, hex);
        goto out;
    }
    if (grc < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot look up '%s' at commit %s: %s", path, hex,
                          git_msg());
        goto out;
    }
    git_filemode_t mode = git_tree_entry_filemode(entry);
    if (!is_blob_mode(mode)) {
        rc = rv_error_set(err, RV_EINVAL, false, "'%s' at commit %s is a %s, not a regular file",
                          path, hex,
                          mode == GIT_FILEMODE_TREE   ? "directory"
                          : mode == GIT_FILEMODE_LINK ? "symbolic link"
                                                      : "submodule");
        goto out;
    }
    if (git_repository_odb(&odb, src->repo) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot open the object database: %s", git_msg());
        goto out;
    }
    size_t size = 0;
    git_object_t type;
    if (git_odb_read_header(&size, &type, odb, git_tree_entry_id(entry)) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot read '%s' at commit %s: %s", path, hex,
                          git_msg());
        goto out;
    }
    if (size > RV_SPEC_FILE_MAX) {
        if (too_big)
            *too_big = size;
        rc = rv_error_set(err, RV_ELIMIT, false,
                          "'%s' at commit %s is %zu bytes, larger than the %d-byte limit for "
                          "spec files (split it into smaller files)",
                          path, hex, size, RV_SPEC_FILE_MAX);
        goto out;
    }
    if (git_blob_lookup(&blob, src->repo, git_tree_entry_id(entry)) < 0) {
        rc = rv_error_set(err, RV_EGIT, false, "cannot read '%s' at commit %s: %s", path, hex,
                          git_msg());
        goto out;
    }
    git_object_size_t raw = git_blob_rawsize(blob);
    if (raw > RV_SPEC_FILE_MAX) { /* header and object disagree: corrupt mirror */
        rc = rv_error_set(err, RV_EGIT, false, "'%s' at commit %s has an inconsistent size", path,
                          hex);
        goto out;
    }
    if (buf_reserve(out, (size_t)raw) != 0 ||
        buf_append(out, git_blob_rawcontent(blob), (size_t)raw) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory reading '%s'", path);
        goto out;
    }
out:
    git_blob_free(blob);
    git_odb_free(odb);
    git_tree_entry_free(entry);
    return rc;
}

int source_read_file(struct source *src, const git_oid *commit, const char *path, struct buf *out,
                     struct rv_error *err)
{
    int rc = 0;
    git_tree *tree = NULL;
    rc = check_rel_path(path, err);
    if (rc != 0)
        goto out;
    rc = commit_tree(src, commit, &tree, err);
    if (rc != 0)
        goto out;
    rc = read_at_tree(src, tree, commit, path, out, NULL, err);
out:
    git_tree_free(tree);
    return rc;
}

/* ---- loading specs ----------------------------------------------------- */

/* Read one spec file and hand it to the spec loader. A file over the size
 * limit is a diagnostic on that file, not a failure. */
static int load_one(struct source *src, git_tree *tree, const git_oid *commit,
                    const struct source_file *f, struct buf *data, struct spec_set *set,
                    struct diag_list *diags, struct rv_error *err)
{
    size_t too_big = 0;
    int rc = read_at_tree(src, tree, commit, f->path, data, &too_big, err);
    if (rc == RV_ELIMIT && too_big) {
        rv_error_clear(err);
        if (diag_add(diags, DIAG_ERROR, f->path, 0, 0, "",
                     "file is %zu bytes, larger than the %d-byte limit for spec files (split it "
                     "into smaller files)",
                     too_big, RV_SPEC_FILE_MAX) != 0)
            return rv_error_set(err, RV_ENOMEM, false, "out of memory");
        return 0;
    }
    if (rc != 0)
        return rc;
    rc = spec_set_add_buffer(set, f->kind, f->path, data->data, data->len, diags);
    if (rc != 0)
        return rv_error_set(err, rc, false, "cannot load '%s': %s", f->path, rv_strerror(rc));
    return 0;
}

int source_load_specs(struct source *src, const git_oid *commit, struct spec_set *set,
                      struct diag_list *diags, struct rv_error *err)
{
    int rc = 0;
    git_tree *tree = NULL;
    struct source_file_list files;
    struct buf data = BUF_INIT;
    source_file_list_init(&files);

    rc = commit_tree(src, commit, &tree, err);
    if (rc != 0)
        goto out;
    rc = source_list_spec_files(src, commit, &files, err);
    if (rc == RV_ELIMIT) {
        /* the repository's shape is the user's to fix: report, load nothing */
        if (diag_add(diags, DIAG_ERROR, "", 0, 0, "", "%s", err ? err->msg : "too many files") != 0)
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        else
            rc = 0;
        rv_error_clear(err);
        goto out;
    }
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < files.len; i++) {
        rc = load_one(src, tree, commit, &files.items[i], &data, set, diags, err);
        if (rc != 0)
            goto out;
    }
out:
    buf_release(&data);
    source_file_list_release(&files);
    git_tree_free(tree);
    return rc;
}

int source_update_specs(struct source *src, struct spec_set *set, const git_oid *base,
                        const git_oid *head, struct diag_list *diags, struct rv_error *err)
{
    int rc = 0;
    git_tree *tree = NULL;
    struct source_file_list changed;
    struct buf data = BUF_INIT;
    source_file_list_init(&changed);

    rc = source_changed_files(src, base, head, &changed, err);
    if (rc != 0)
        goto out;
    rc = commit_tree(src, head, &tree, err);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < changed.len; i++) {
        const struct source_file *f = &changed.items[i];
        spec_set_remove_file(set, f->path);
        if (f->change == SOURCE_DELETED)
            continue;
        rc = load_one(src, tree, head, f, &data, set, diags, err);
        if (rc != 0)
            goto out;
    }
out:
    buf_release(&data);
    source_file_list_release(&changed);
    git_tree_free(tree);
    return rc;
}
