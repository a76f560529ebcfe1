/* test_source.c - the Git source against real repositories built in a temp
 * directory with libgit2, served locally, over file:// and over smart HTTP
 * (tests/integration/githttp.sh: git http-backend behind lighttpd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "diag.h"
#include "err.h"
#include "limits.h"
#include "log.h"
#include "source.h"
#include "spec.h"

/* The I/O timeout the tests install: short, so the stalled-server test is
 * quick, and long enough for a loaded CI machine to answer. */
#define TEST_IO_TIMEOUT_MS 1500
/* Paths below the temp root (lib/limits.h shadows <limits.h>). */
#define TPATH 4096

static char g_root[1024];
static int g_seq;

/* ---- helpers ----------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh path below the test root: "<root>/<name>-<n>". */
static void fresh_path(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s-%d", g_root, name, ++g_seq);
    assert_true(n > 0 && (size_t)n < size);
}

static void check_git(int rc)
{
    if (rc < 0) {
        const git_error *e = git_error_last();
        fail_msg("libgit2: %s", e && e->message ? e->message : "?");
    }
}

static git_repository *upstream_new(char *path, size_t size)
{
    git_repository *repo = NULL;
    fresh_path(path, size, "upstream");
    check_git(git_repository_init(&repo, path, 1));
    return repo;
}

struct upd {
    const char *path;
    const char *data;    /* NULL: remove */
    size_t len;          /* 0: strlen(data) */
    git_filemode_t mode; /* 0: regular file */
};

/* Commit the updates on top of parent (NULL: an empty tree) and point ref
 * (may be NULL) at it. */
static void commit_files(git_repository *repo, const char *ref, const git_oid *parent,
                         const struct upd *u, size_t n, git_oid *out)
{
    static int clock_tick;
    git_commit *pc = NULL;
    git_tree *base = NULL, *tree = NULL;
    git_signature *sig = NULL;
    git_oid tree_oid;
    if (parent) {
        check_git(git_commit_lookup(&pc, repo, parent));
        check_git(git_commit_tree(&base, pc));
    } else {
        git_treebuilder *tb = NULL;
        check_git(git_treebuilder_new(&tb, repo, NULL));
        check_git(git_treebuilder_write(&tree_oid, tb));
        git_treebuilder_free(tb);
        check_git(git_tree_lookup(&base, repo, &tree_oid));
    }
    git_tree_update *ups = calloc(n ? n : 1, sizeof(*ups));
    assert_non_null(ups);
    for (size_t i = 0; i < n; i++) {
        ups[i].path = u[i].path;
        if (u[i].data) {
            size_t len = u[i].len ? u[i].len : strlen(u[i].data);
            check_git(git_blob_create_from_buffer(&ups[i].id, repo, u[i].data, len));
            ups[i].action = GIT_TREE_UPDATE_UPSERT;
            ups[i].filemode = u[i].mode ? u[i].mode : GIT_FILEMODE_BLOB;
        } else {
            ups[i].action = GIT_TREE_UPDATE_REMOVE;
        }
    }
    check_git(git_tree_create_updated(&tree_oid, repo, base, n, ups));
    free(ups);
    check_git(git_tree_lookup(&tree, repo, &tree_oid));
    check_git(git_signature_new(&sig, "reeve test", "test@example.invalid",
                                1700000000 + ++clock_tick, 0));
    const git_commit *parents[1] = {pc};
    check_git(git_commit_create(out, repo, NULL, sig, sig, NULL, "test commit", tree, pc ? 1 : 0,
                                parents));
    if (ref) {
        git_reference *r = NULL;
        check_git(git_reference_create(&r, repo, ref, out, 1, NULL));
        git_reference_free(r);
    }
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(base);
    git_commit_free(pc);
}

static void set_ref(git_repository *repo, const char *name, const git_oid *oid)
{
    git_reference *r = NULL;
    check_git(git_reference_create(&r, repo, name, oid, 1, NULL));
    git_reference_free(r);
}

static void del_ref(git_repository *repo, const char *name)
{
    git_reference *r = NULL;
    check_git(git_reference_lookup(&r, repo, name));
    check_git(git_reference_delete(r));
    git_reference_free(r);
}

static struct source *open_source(const char *url, enum source_forge forge, char *mirror,
                                  size_t mirror_size)
{
    struct source_config cfg;
    source_config_init(&cfg);
    fresh_path(mirror, mirror_size, "mirror");
    cfg.url = url;
    cfg.mirror_dir = mirror;
    cfg.forge = forge;
    struct source *src = NULL;
    struct rv_error err;
    rv_error_clear(&err);
    int rc = source_open(&src, &cfg, &err);
    if (rc != 0)
        fail_msg("source_open: %s", err.msg);
    return src;
}

static void fetch_ok(struct source *src, struct source_fetch_result *res)
{
    struct rv_error err;
    rv_error_clear(&err);
    int rc = source_fetch(src, res, &err);
    if (rc != 0)
        fail_msg("source_fetch: %s (%s)", err.msg, rv_errname(rc));
}

static const struct source_ref_change *find_change(const struct source_fetch_result *res,
                                                   enum source_ref_kind kind, uint64_t pull)
{
    for (size_t i = 0; i < res->nchanges; i++) {
        if (res->changes[i].kind == kind && res->changes[i].pull == pull)
            return &res->changes[i];
    }
    return NULL;
}

static void assert_oid_eq(const git_oid *a, const git_oid *b)
{
    char ha[GIT_OID_HEXSZ + 1], hb[GIT_OID_HEXSZ + 1];
    git_oid_tostr(ha, sizeof(ha), a);
    git_oid_tostr(hb, sizeof(hb), b);
    assert_string_equal(ha, hb);
}

static void assert_oid_zero(const git_oid *a)
{
    assert_true(git_oid_is_zero(a));
}

static void resolve_ok(struct source *src, const char *rev, git_oid *out)
{
    struct rv_error err;
    rv_error_clear(&err);
    int rc = source_resolve(src, rev, out, &err);
    if (rc != 0)
        fail_msg("source_resolve('%s'): %s", rev, err.msg);
}

/* ---- open and config ----------------------------------------------------- */

static void test_open_errors(void **state)
{
    (void)state;
    struct source_config cfg;
    struct source *src = NULL;
    struct rv_error err;
    char mirror[TPATH], file[TPATH];

    source_config_init(&cfg);
    fresh_path(mirror, sizeof(mirror), "mirror");
    cfg.mirror_dir = mirror;

    cfg.url = "git@example.com:owner/repo.git";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "ssh"));
    assert_null(src);

    cfg.url = "ssh://example.com/owner/repo.git";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "not supported"));

    cfg.url = "";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);

    cfg.url = "/nonexistent/repo.git";
    cfg.main_branch = "bad..name";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "bad..name"));
    cfg.main_branch = NULL;

    cfg.auth = SOURCE_AUTH_TOKEN;
    cfg.secret = "";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "token is empty"));
    cfg.auth = SOURCE_AUTH_BASIC;
    cfg.secret = "pw";
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "username"));
    cfg.auth = SOURCE_AUTH_NONE;
    cfg.secret = NULL;

    /* the mirror path is a file */
    fresh_path(file, sizeof(file), "file");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    cfg.mirror_dir = file;
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));

    /* a non-empty directory that is no repository is not taken over */
    char other[TPATH + 16];
    assert_int_equal(mkdir(mirror, 0755), 0);
    snprintf(other, sizeof(other), "%s/keep.txt", mirror);
    f = fopen(other, "w");
    assert_non_null(f);
    fclose(f);
    cfg.mirror_dir = mirror;
    assert_int_equal(source_open(&src, &cfg, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "not a bare git repository"));
    assert_null(src);

    source_free(NULL);
}

static void test_forge_parse(void **state)
{
    (void)state;
    enum source_forge f;
    assert_int_equal(source_forge_parse(&f, "github"), 0);
    assert_int_equal(f, SOURCE_FORGE_GITHUB);
    assert_int_equal(source_forge_parse(&f, "gitea"), 0);
    assert_int_equal(f, SOURCE_FORGE_GITEA);
    assert_int_equal(source_forge_parse(&f, "gitlab"), 0);
    assert_int_equal(f, SOURCE_FORGE_GITLAB);
    assert_int_equal(source_forge_parse(&f, "none"), 0);
    assert_int_equal(f, SOURCE_FORGE_NONE);
    assert_int_equal(source_forge_parse(&f, "bitbucket"), RV_EINVAL);
    assert_string_equal(source_forge_name(SOURCE_FORGE_GITLAB), "gitlab");
}

static void test_url_userinfo_hidden(void **state)
{
    (void)state;
    char mirror[TPATH];
    struct source *src = open_source("https://alice:hunter2@git.example.invalid/o/r.git",
                                     SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    assert_string_equal(source_url(src), "https://git.example.invalid/o/r.git");
    assert_string_equal(source_main_branch(src), "main");
    source_free(src);
}

/* ---- fetch over the local and file transports ---------------------------- */

static void run_incremental(const char *url_prefix)
{
    char up_path[TPATH], url[TPATH + 16], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2, got;
    const struct upd u1[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u1, 1, &c1);
    snprintf(url, sizeof(url), "%s%s", url_prefix, up_path);

    struct source *src = open_source(url, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);

    /* first fetch: main appears */
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_int_equal(res.changes[0].kind, SOURCE_REF_MAIN);
    assert_oid_zero(&res.changes[0].old_oid);
    assert_oid_eq(&res.changes[0].new_oid, &c1);
    assert_true(res.received_objects > 0);
    resolve_ok(src, "main", &got);
    assert_oid_eq(&got, &c1);

    /* nothing new: nothing changed */
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 0);

    /* a new commit moves main from c1 to c2 */
    const struct upd u2[] = {{"clusters/a.yaml", "a: 2\n", 0, 0}};
    commit_files(up, "refs/heads/main", &c1, u2, 1, &c2);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_oid_eq(&res.changes[0].old_oid, &c1);
    assert_oid_eq(&res.changes[0].new_oid, &c2);
    char name[32];
    source_ref_change_name(name, sizeof(name), &res.changes[0]);
    assert_string_equal(name, "main");
    source_free(src);

    /* the mirror is a bare repository that persists across opens */
    git_repository *m = NULL;
    check_git(git_repository_open_bare(&m, mirror));
    assert_true(git_repository_is_bare(m));
    git_repository_free(m);
    struct source_config cfg;
    source_config_init(&cfg);
    cfg.url = url;
    cfg.mirror_dir = mirror;
    struct rv_error err;
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    resolve_ok(src, "main", &got);
    assert_oid_eq(&got, &c2);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 0);

    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_local_path_fetch(void **state)
{
    (void)state;
    run_incremental("");
}

static void test_file_url_fetch(void **state)
{
    (void)state;
    run_incremental("file://");
}

static void test_pull_refs_github(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, p1, p2, p2b, got;
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    const struct upd up1[] = {{"clusters/b.yaml", "b: 1\n", 0, 0}};
    const struct upd up2[] = {{"clusters/c.yaml", "c: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c1);
    commit_files(up, "refs/pull/1/head", &c1, up1, 1, &p1);
    commit_files(up, "refs/pull/12/head", &c1, up2, 1, &p2);
    set_ref(up, "refs/pull/12/merge", &p1); /* GitHub's merge preview: not mirrored */
    set_ref(up, "refs/heads/feature", &p1); /* other branches: not mirrored */

    struct source *src = open_source(up_path, SOURCE_FORGE_GITHUB, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 3);
    assert_int_equal(res.changes[0].kind, SOURCE_REF_MAIN);
    assert_int_equal(res.changes[1].pull, 1);
    assert_int_equal(res.changes[2].pull, 12);
    assert_oid_eq(&res.changes[2].new_oid, &p2);
    char name[32];
    source_ref_change_name(name, sizeof(name), &res.changes[2]);
    assert_string_equal(name, "pull/12");
    resolve_ok(src, "pull/1", &got);
    assert_oid_eq(&got, &p1);

    struct rv_error err;
    assert_int_equal(source_resolve(src, "feature", &got, &err), RV_ENOTFOUND);
    assert_int_equal(source_resolve(src, "refs/reeve/pull/12/merge", &got, &err), RV_ENOTFOUND);

    /* pull 12 gets a new head, pull 1 is closed and its ref deleted */
    commit_files(up, "refs/pull/12/head", &p2, up1, 1, &p2b);
    del_ref(up, "refs/pull/1/head");
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 2);
    const struct source_ref_change *ch = find_change(&res, SOURCE_REF_PULL, 1);
    assert_non_null(ch);
    assert_oid_eq(&ch->old_oid, &p1);
    assert_oid_zero(&ch->new_oid);
    ch = find_change(&res, SOURCE_REF_PULL, 12);
    assert_non_null(ch);
    assert_oid_eq(&ch->old_oid, &p2);
    assert_oid_eq(&ch->new_oid, &p2b);
    assert_int_equal(source_resolve(src, "pull/1", &got, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "pull/1"));

    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_pull_refs_gitlab(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, m5, got;
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    const struct upd u5[] = {{"policies/p.yaml", "p: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c1);
    commit_files(up, "refs/merge-requests/5/head", &c1, u5, 1, &m5);
    set_ref(up, "refs/pull/7/head", &c1); /* GitHub-style ref: not a GitLab MR */

    struct source *src = open_source(up_path, SOURCE_FORGE_GITLAB, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 2);
    assert_non_null(find_change(&res, SOURCE_REF_PULL, 5));
    assert_null(find_change(&res, SOURCE_REF_PULL, 7));
    resolve_ok(src, "pull/5", &got);
    assert_oid_eq(&got, &m5);

    del_ref(up, "refs/merge-requests/5/head");
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_oid_zero(&res.changes[0].new_oid);
    assert_int_equal(res.changes[0].pull, 5);

    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_forge_none_mirrors_main_only(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1;
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c1);
    set_ref(up, "refs/pull/3/head", &c1);
    set_ref(up, "refs/tags/v1", &c1);

    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_int_equal(res.changes[0].kind, SOURCE_REF_MAIN);
    git_oid got;
    struct rv_error err;
    assert_int_equal(source_resolve(src, "pull/3", &got, &err), RV_ENOTFOUND);
    assert_int_equal(source_resolve(src, "v1", &got, &err), RV_ENOTFOUND);
    source_free(src);

    /* the same mirror switched from github to none drops its pull refs */
    struct source_config cfg;
    source_config_init(&cfg);
    cfg.url = up_path;
    cfg.mirror_dir = mirror;
    cfg.forge = SOURCE_FORGE_GITHUB;
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_int_equal(res.changes[0].pull, 3);
    resolve_ok(src, "pull/3", &got);
    source_free(src);
    cfg.forge = SOURCE_FORGE_NONE;
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    assert_int_equal(res.changes[0].pull, 3);
    assert_oid_zero(&res.changes[0].new_oid);
    assert_int_equal(source_resolve(src, "pull/3", &got, &err), RV_ENOTFOUND);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_missing_main_branch(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1;
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c1);

    struct source_config cfg;
    source_config_init(&cfg);
    fresh_path(mirror, sizeof(mirror), "mirror");
    cfg.url = up_path;
    cfg.mirror_dir = mirror;
    cfg.main_branch = "trunk";
    struct source *src = NULL;
    struct rv_error err;
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    assert_int_equal(source_fetch(src, &res, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'trunk'"));
    assert_int_equal(res.nchanges, 0);
    source_fetch_result_release(&res);
    source_free(src);

    /* a repository that does not exist */
    cfg.url = "/nonexistent/reeve/repo.git";
    cfg.main_branch = NULL;
    fresh_path(mirror, sizeof(mirror), "mirror");
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    assert_int_equal(source_fetch(src, &res, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'/nonexistent/reeve/repo.git' does not exist"));
    source_free(src);
    git_repository_free(up);
}

static void test_fetch_busy(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH], lock[TPATH + 32];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1;
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c1);
    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));

    snprintf(lock, sizeof(lock), "%s/reeve-fetch.lock", mirror);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    struct rv_error err;
    assert_int_equal(source_fetch(src, &res, &err), RV_EBUSY);
    assert_true(err.retryable);
    close(fd);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 1);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_fetch_deadline(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1;
    /* enough objects that packing them takes longer than the 1 ms deadline */
    enum { NFILES = 400 };
    struct upd *u = calloc(NFILES, sizeof(*u));
    char(*paths)[64] = calloc(NFILES, sizeof(*paths));
    char(*bodies)[64] = calloc(NFILES, sizeof(*bodies));
    assert_non_null(u);
    assert_non_null(paths);
    assert_non_null(bodies);
    for (int i = 0; i < NFILES; i++) {
        snprintf(paths[i], sizeof(paths[i]), "clusters/f%03d.yaml", i);
        snprintf(bodies[i], sizeof(bodies[i]), "n: %d\n", i);
        u[i].path = paths[i];
        u[i].data = bodies[i];
    }
    commit_files(up, "refs/heads/main", NULL, u, NFILES, &c1);
    free(u);
    free(paths);
    free(bodies);

    struct source_config cfg;
    source_config_init(&cfg);
    fresh_path(mirror, sizeof(mirror), "mirror");
    cfg.url = up_path;
    cfg.mirror_dir = mirror;
    cfg.fetch_timeout_ms = 1;
    struct source *src = NULL;
    struct rv_error err;
    assert_int_equal(source_open(&src, &cfg, &err), 0);
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    assert_int_equal(source_fetch(src, &res, &err), RV_ETIMEOUT);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "longer than 1 ms"));
    assert_int_equal(res.nchanges, 0);
    assert_true(res.duration_ms >= 1);
    source_free(src);
    git_repository_free(up);
}

/* Readers on their own sources (one per thread) while another source
 * fetches new commits into the same mirror. */
struct reader_arg {
    const char *url;
    const char *mirror;
    int failures;
    int reads;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    struct source_config cfg;
    source_config_init(&cfg);
    cfg.url = a->url;
    cfg.mirror_dir = a->mirror;
    struct source *src = NULL;
    struct rv_error err;
    if (source_open(&src, &cfg, &err) != 0) {
        a->failures++;
        return NULL;
    }
    struct source_file_list l;
    struct buf b = BUF_INIT;
    source_file_list_init(&l);
    for (int i = 0; i < 40; i++) {
        git_oid head;
        if (source_resolve(src, "main", &head, &err) != 0 ||
            source_list_spec_files(src, &head, &l, &err) != 0 || l.len == 0 ||
            source_read_file(src, &head, l.items[0].path, &b, &err) != 0) {
            a->failures++;
            continue;
        }
        a->reads++;
    }
    buf_release(&b);
    source_file_list_release(&l);
    source_free(src);
    return NULL;
}

static void test_readers_during_fetch(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c, next;
    const struct upd u[] = {{"clusters/a.yaml", "a: 0\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, &c);
    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    enum { NREADERS = 3 };
    struct reader_arg args[NREADERS];
    pthread_t th[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        args[i] = (struct reader_arg){.url = up_path, .mirror = mirror};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    for (int i = 1; i <= 10; i++) {
        char body[32], path[64];
        snprintf(body, sizeof(body), "a: %d\n", i);
        snprintf(path, sizeof(path), "clusters/f%d.yaml", i);
        const struct upd ui[] = {{"clusters/a.yaml", body, 0, 0}, {path, body, 0, 0}};
        commit_files(up, "refs/heads/main", &c, ui, 2, &next);
        c = next;
        fetch_ok(src, &res);
    }
    for (int i = 0; i < NREADERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
        assert_int_equal(args[i].reads, 40);
    }
    git_oid got;
    resolve_ok(src, "main", &got);
    assert_oid_eq(&got, &c);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* ---- resolve and merge base ---------------------------------------------- */

static void test_resolve_and_merge_base(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2, c3, p1, got, base;
    const struct upd u1[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    const struct upd u2[] = {{"clusters/a.yaml", "a: 2\n", 0, 0}};
    const struct upd u3[] = {{"clusters/a.yaml", "a: 3\n", 0, 0}};
    const struct upd up1[] = {{"clusters/b.yaml", "b: 1\n", 0, 0}};
    commit_files(up, NULL, NULL, u1, 1, &c1);
    commit_files(up, NULL, &c1, u2, 1, &c2);
    commit_files(up, "refs/heads/main", &c2, u3, 1, &c3);
    commit_files(up, "refs/pull/4/head", &c2, up1, 1, &p1);

    struct source *src = open_source(up_path, SOURCE_FORGE_GITEA, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &c2);
    resolve_ok(src, hex, &got); /* full sha */
    assert_oid_eq(&got, &c2);
    hex[10] = '\0';
    resolve_ok(src, hex, &got); /* abbreviated */
    assert_oid_eq(&got, &c2);
    resolve_ok(src, "main~2", &got);
    assert_oid_eq(&got, &c1);
    resolve_ok(src, "pull/4", &got);
    assert_oid_eq(&got, &p1);

    struct rv_error err;
    assert_int_equal(source_resolve(src, "nope", &got, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    assert_int_equal(source_resolve(src, "pull/99", &got, &err), RV_ENOTFOUND);
    assert_int_equal(source_resolve(src, "", &got, &err), RV_EINVAL);
    char longrev[RV_GIT_REVSPEC_MAX + 2];
    memset(longrev, 'a', sizeof(longrev) - 1);
    longrev[sizeof(longrev) - 1] = '\0';
    assert_int_equal(source_resolve(src, longrev, &got, &err), RV_EINVAL);
    /* a tree is not a commit */
    assert_int_equal(source_resolve(src, "main^{tree}", &got, &err), RV_EINVAL);

    assert_int_equal(source_merge_base(src, &c3, &p1, &base, &err), 0);
    assert_oid_eq(&base, &c2);

    /* unrelated history */
    git_oid lone;
    commit_files(up, "refs/pull/9/head", NULL, u1, 1, &lone);
    fetch_ok(src, &res);
    assert_int_equal(source_merge_base(src, &c3, &lone, &base, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no common ancestor"));

    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* ---- spec paths, changed files, listings, reads -------------------------- */

static void test_is_spec_path(void **state)
{
    (void)state;
    enum spec_file_kind k = SPEC_FILE_POLICIES;
    assert_true(source_is_spec_path("clusters/a.yaml", &k));
    assert_int_equal(k, SPEC_FILE_CLUSTERS);
    assert_true(source_is_spec_path("clusters/team/b.yml", &k));
    assert_true(source_is_spec_path("clusters/x.tf.json", &k));
    assert_true(source_is_spec_path("policies/p.yaml", &k));
    assert_int_equal(k, SPEC_FILE_POLICIES);
    assert_false(source_is_spec_path("policies/p.tf.json", &k));
    assert_false(source_is_spec_path("clusters/x.json", &k));
    assert_false(source_is_spec_path("clusters/readme.md", &k));
    assert_false(source_is_spec_path("clusters/.hidden.yaml", &k));
    assert_false(source_is_spec_path("clusters/.git/a.yaml", &k));
    assert_false(source_is_spec_path("clusters//a.yaml", &k));
    assert_false(source_is_spec_path("clusters/.yaml", &k));
    assert_false(source_is_spec_path("other/a.yaml", &k));
    assert_false(source_is_spec_path("a.yaml", &k));
    assert_false(source_is_spec_path("clustersx/a.yaml", &k));
    assert_false(source_is_spec_path("clusters/a.YAML", &k));
}

static const struct source_file *find_file(const struct source_file_list *l, const char *path)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i].path, path) == 0)
            return &l->items[i];
    }
    return NULL;
}

static void test_changed_files(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2;
    const struct upd u1[] = {
        {"clusters/a.yaml", "a: 1\n", 0, 0},     {"clusters/b.yml", "b: 1\n", 0, 0},
        {"clusters/x.tf.json", "{}\n", 0, 0},    {"clusters/mode.yaml", "m: 1\n", 0, 0},
        {"clusters/notes.txt", "notes\n", 0, 0}, {"policies/p.yaml", "p: 1\n", 0, 0},
        {"README.md", "hello\n", 0, 0},          {"other/z.yaml", "z: 1\n", 0, 0},
    };
    const struct upd u2[] = {
        {"clusters/a.yaml", "a: 2\n", 0, 0},                               /* modified */
        {"clusters/b.yml", NULL, 0, 0},                                    /* deleted */
        {"clusters/sub/c.yaml", "c: 1\n", 0, 0},                           /* added */
        {"clusters/mode.yaml", "m: 1\n", 0, GIT_FILEMODE_BLOB_EXECUTABLE}, /* mode only */
        {"clusters/notes.txt", "changed\n", 0, 0},                         /* not a spec file */
        {"clusters/.hidden.yaml", "h: 1\n", 0, 0},                         /* hidden */
        {"clusters/link.yaml", "a.yaml", 0, GIT_FILEMODE_LINK},            /* symlink */
        {"policies/p.yaml", NULL, 0, 0},                                   /* deleted */
        {"policies/q.tf.json", "{}\n", 0, 0},                              /* not a policy ending */
        {"README.md", "changed\n", 0, 0},
        {"other/z.yaml", "z: 2\n", 0, 0},
    };
    commit_files(up, NULL, NULL, u1, sizeof(u1) / sizeof(u1[0]), &c1);
    commit_files(up, "refs/heads/main", &c1, u2, sizeof(u2) / sizeof(u2[0]), &c2);

    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    struct source_file_list l;
    source_file_list_init(&l);
    struct rv_error err;
    assert_int_equal(source_changed_files(src, &c1, &c2, &l, &err), 0);
    assert_int_equal(l.len, 4);
    /* sorted by path */
    assert_string_equal(l.items[0].path, "clusters/a.yaml");
    assert_int_equal(l.items[0].change, SOURCE_MODIFIED);
    assert_int_equal(l.items[0].kind, SPEC_FILE_CLUSTERS);
    assert_string_equal(l.items[1].path, "clusters/b.yml");
    assert_int_equal(l.items[1].change, SOURCE_DELETED);
    assert_oid_zero(&l.items[1].blob);
    assert_string_equal(l.items[2].path, "clusters/sub/c.yaml");
    assert_int_equal(l.items[2].change, SOURCE_ADDED);
    assert_false(git_oid_is_zero(&l.items[2].blob));
    assert_string_equal(l.items[3].path, "policies/p.yaml");
    assert_int_equal(l.items[3].change, SOURCE_DELETED);
    assert_int_equal(l.items[3].kind, SPEC_FILE_POLICIES);
    assert_string_equal(source_change_name(SOURCE_ADDED), "added");

    /* reversed: additions and deletions swap */
    assert_int_equal(source_changed_files(src, &c2, &c1, &l, &err), 0);
    assert_int_equal(l.len, 4);
    assert_int_equal(find_file(&l, "clusters/b.yml")->change, SOURCE_ADDED);
    assert_int_equal(find_file(&l, "clusters/sub/c.yaml")->change, SOURCE_DELETED);

    /* same commit: nothing */
    assert_int_equal(source_changed_files(src, &c2, &c2, &l, &err), 0);
    assert_int_equal(l.len, 0);

    /* a commit the mirror does not have */
    git_oid bogus;
    memset(&bogus, 0x42, sizeof(bogus));
    assert_int_equal(source_changed_files(src, &c1, &bogus, &l, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "fetch first"));

    source_file_list_release(&l);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* Pause files: clusters/<namespace>/PAUSED, one level down only. */
static void test_list_named_files(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2;
    const struct upd u1[] = {
        {"clusters/search/PAUSED", "", 0, 0},
        {"clusters/payments/PAUSED", "quarter-end freeze\n", 0, 0},
        {"clusters/payments/billing.yaml", "b: 1\n", 0, 0},
        {"clusters/PAUSED", "top level: not a namespace\n", 0, 0},
        {"clusters/deep/er/PAUSED", "too deep\n", 0, 0},
        {"clusters/.hidden/PAUSED", "hidden\n", 0, 0},
        {"clusters/link/PAUSED", "x", 0, GIT_FILEMODE_LINK},
        {"clusters/dir/PAUSED/x.yaml", "d: 1\n", 0, 0},
        {"policies/p/PAUSED", "not clusters/\n", 0, 0},
    };
    commit_files(up, "refs/heads/main", NULL, u1, sizeof(u1) / sizeof(u1[0]), &c1);
    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    struct source_file_list l;
    struct rv_error err;
    struct buf b = BUF_INIT;
    source_file_list_init(&l);
    assert_int_equal(source_list_named_files(src, &c1, "PAUSED", &l, &err), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].path, "clusters/payments/PAUSED");
    assert_string_equal(l.items[1].path, "clusters/search/PAUSED");
    assert_int_equal(source_read_file(src, &c1, l.items[0].path, &b, &err), 0);
    assert_int_equal(b.len, strlen("quarter-end freeze\n"));

    /* removing the file resumes: the list is empty again */
    const struct upd u2[] = {{"clusters/payments/PAUSED", NULL, 0, 0},
                             {"clusters/search/PAUSED", NULL, 0, 0}};
    commit_files(up, "refs/heads/main", &c1, u2, 2, &c2);
    fetch_ok(src, &res);
    assert_int_equal(source_list_named_files(src, &c2, "PAUSED", &l, &err), 0);
    assert_int_equal(l.len, 0);

    buf_release(&b);
    source_file_list_release(&l);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_list_spec_files(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2, c3;

    /* a path exactly RV_WALK_DEPTH_MAX directories below clusters/ */
    static char deep_ok[RV_WALK_DEPTH_MAX * 3 + 32], deep_bad[RV_WALK_DEPTH_MAX * 3 + 40];
    strcpy(deep_ok, "clusters");
    for (int i = 0; i < RV_WALK_DEPTH_MAX; i++)
        strcat(deep_ok, "/d");
    strcpy(deep_bad, deep_ok);
    strcat(deep_ok, "/ok.yaml");
    strcat(deep_bad, "/d/bad.yaml");

    const struct upd u1[] = {
        {"policies/z.yaml", "z: 1\n", 0, 0},
        {"clusters/b.yaml", "b: 1\n", 0, 0},
        {"clusters/a/x.yml", "x: 1\n", 0, 0},
        {"clusters/a.tf.json", "{}\n", 0, 0},
        {"clusters/exec.yaml", "e: 1\n", 0, GIT_FILEMODE_BLOB_EXECUTABLE},
        {"clusters/.hidden/h.yaml", "h: 1\n", 0, 0},
        {"clusters/link.yaml", "b.yaml", 0, GIT_FILEMODE_LINK},
        {"clusters/readme.md", "r\n", 0, 0},
        {"examples/e.yaml", "e: 1\n", 0, 0},
        {deep_ok, "d: 1\n", 0, 0},
    };
    commit_files(up, "refs/heads/main", NULL, u1, sizeof(u1) / sizeof(u1[0]), &c1);

    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    struct source_file_list l;
    source_file_list_init(&l);
    struct rv_error err;
    assert_int_equal(source_list_spec_files(src, &c1, &l, &err), 0);
    assert_int_equal(l.len, 6);
    assert_string_equal(l.items[0].path, "clusters/a.tf.json");
    assert_string_equal(l.items[1].path, "clusters/a/x.yml");
    assert_string_equal(l.items[2].path, "clusters/b.yaml");
    assert_string_equal(l.items[3].path, deep_ok);
    assert_string_equal(l.items[4].path, "clusters/exec.yaml");
    assert_string_equal(l.items[5].path, "policies/z.yaml");
    assert_int_equal(l.items[5].kind, SPEC_FILE_POLICIES);
    for (size_t i = 0; i + 1 < l.len; i++)
        assert_true(strcmp(l.items[i].path, l.items[i + 1].path) < 0);

    /* one directory deeper is refused, not silently skipped */
    const struct upd u2[] = {{deep_bad, "d: 2\n", 0, 0}};
    commit_files(up, "refs/heads/main", &c1, u2, 1, &c2);
    fetch_ok(src, &res);
    assert_int_equal(source_list_spec_files(src, &c2, &l, &err), RV_ELIMIT);
    assert_non_null(strstr(err.msg, "deep"));
    assert_int_equal(l.len, 0);
    assert_int_equal(source_changed_files(src, &c1, &c2, &l, &err), RV_ELIMIT);

    /* no clusters/ or policies/ at all: an empty list */
    const struct upd u3[] = {{"README.md", "x\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u3, 1, &c3);
    fetch_ok(src, &res);
    assert_int_equal(source_list_spec_files(src, &c3, &l, &err), 0);
    assert_int_equal(l.len, 0);

    source_file_list_release(&l);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

static void test_read_file(void **state)
{
    (void)state;
    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1;
    char *at_limit = malloc(RV_SPEC_FILE_MAX);
    char *over = malloc(RV_SPEC_FILE_MAX + 1);
    assert_non_null(at_limit);
    assert_non_null(over);
    memset(at_limit, '#', RV_SPEC_FILE_MAX);
    memset(over, '#', RV_SPEC_FILE_MAX + 1);
    const struct upd u[] = {
        {"clusters/a.yaml", "a: 1\n", 0, 0},
        {"clusters/max.yaml", at_limit, RV_SPEC_FILE_MAX, 0},
        {"clusters/big.yaml", over, RV_SPEC_FILE_MAX + 1, 0},
        {"clusters/empty.yaml", "", 0, 0},
        {"clusters/link.yaml", "a.yaml", 0, GIT_FILEMODE_LINK},
    };
    /* an empty blob: len 0 means strlen, which is 0 */
    commit_files(up, "refs/heads/main", NULL, u, sizeof(u) / sizeof(u[0]), &c1);
    free(at_limit);
    free(over);

    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    struct buf b = BUF_INIT;
    struct rv_error err;
    assert_int_equal(source_read_file(src, &c1, "clusters/a.yaml", &b, &err), 0);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "a: 1\n");

    assert_int_equal(source_read_file(src, &c1, "clusters/max.yaml", &b, &err), 0);
    assert_int_equal(b.len, RV_SPEC_FILE_MAX);

    assert_int_equal(source_read_file(src, &c1, "clusters/big.yaml", &b, &err), RV_ELIMIT);
    assert_non_null(strstr(err.msg, "clusters/big.yaml"));
    assert_non_null(strstr(err.msg, "1048577 bytes"));
    assert_int_equal(b.len, 0);

    assert_int_equal(source_read_file(src, &c1, "clusters/empty.yaml", &b, &err), 0);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);

    assert_int_equal(source_read_file(src, &c1, "clusters/none.yaml", &b, &err), RV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "clusters/none.yaml"));
    assert_int_equal(source_read_file(src, &c1, "clusters", &b, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "directory"));
    assert_int_equal(source_read_file(src, &c1, "clusters/link.yaml", &b, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_int_equal(source_read_file(src, &c1, "../etc/passwd", &b, &err), RV_EINVAL);
    assert_int_equal(source_read_file(src, &c1, "/clusters/a.yaml", &b, &err), RV_EINVAL);
    assert_int_equal(source_read_file(src, &c1, "clusters//a.yaml", &b, &err), RV_EINVAL);
    assert_int_equal(source_read_file(src, &c1, "clusters/./a.yaml", &b, &err), RV_EINVAL);
    assert_int_equal(source_read_file(src, &c1, "", &b, &err), RV_EINVAL);

    buf_release(&b);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* ---- loading specs --------------------------------------------------------- */

struct dir_files {
    const char *root;
    size_t root_len;
    struct upd *items;
    size_t len;
    size_t cap;
};

static struct dir_files *g_walk; /* nftw has no payload argument */

static int collect_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    struct dir_files *d = g_walk;
    if (d->len == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->items = realloc(d->items, d->cap * sizeof(*d->items));
        assert_non_null(d->items);
    }
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *data = malloc((size_t)st->st_size + 1);
    assert_non_null(data);
    size_t n = fread(data, 1, (size_t)st->st_size, f);
    fclose(f);
    assert_int_equal(n, (size_t)st->st_size);
    data[n] = '\0';
    struct upd *u = &d->items[d->len++];
    memset(u, 0, sizeof(*u));
    u->path = strdup(path + d->root_len + 1);
    u->data = data;
    u->len = n;
    return 0;
}

static void collect_dir(struct dir_files *d, const char *root)
{
    memset(d, 0, sizeof(*d));
    d->root = root;
    d->root_len = strlen(root);
    g_walk = d;
    assert_int_equal(nftw(root, collect_one, 16, FTW_PHYS), 0);
    g_walk = NULL;
}

static void dir_files_release(struct dir_files *d)
{
    for (size_t i = 0; i < d->len; i++) {
        free((char *)d->items[i].path);
        free((char *)d->items[i].data);
    }
    free(d->items);
}

/* Cluster digests and policy names of a set, as one comparable string. */
static void set_summary(struct spec_set *set, struct buf *out)
{
    buf_clear(out);
    spec_set_sort(set);
    for (size_t i = 0; i < set->nclusters; i++)
        buf_printf(out, "c %s/%s %s %s\n", set->clusters[i]->namespace_, set->clusters[i]->name,
                   set->clusters[i]->file, set->clusters[i]->digest);
    /* policies are not sorted by spec_set_sort: order by name here */
    char **names = calloc(set->npolicies + 1, sizeof(*names));
    assert_non_null(names);
    for (size_t i = 0; i < set->npolicies; i++)
        names[i] = set->policies[i]->name;
    for (size_t i = 0; i < set->npolicies; i++) {
        for (size_t j = i + 1; j < set->npolicies; j++) {
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
        }
    }
    for (size_t i = 0; i < set->npolicies; i++)
        buf_printf(out, "p %s\n", names[i]);
    free(names);
}

/* A copy of a YAML spec with c inserted before metadata.name's value. */
static char *with_name_prefix(const char *data, char c)
{
    const char *at = strstr(data, "\n  name: ");
    assert_non_null(at);
    size_t head = (size_t)(at - data) + strlen("\n  name: ");
    size_t len = strlen(data);
    char *out = malloc(len + 2);
    assert_non_null(out);
    memcpy(out, data, head);
    out[head] = c;
    memcpy(out + head + 1, data + head, len - head + 1);
    return out;
}

static void test_load_and_update_specs(void **state)
{
    (void)state;
    const char *srcdir = getenv("REEVE_SOURCE_DIR");
    if (srcdir == NULL)
        skip();
    char quick[TPATH];
    snprintf(quick, sizeof(quick), "%s/examples/quickstart", srcdir);
    struct dir_files files;
    collect_dir(&files, quick);
    assert_true(files.len > 3);

    char up_path[TPATH], mirror[TPATH];
    git_repository *up = upstream_new(up_path, sizeof(up_path));
    git_oid c1, c2;
    commit_files(up, "refs/heads/main", NULL, files.items, files.len, &c1);

    struct source *src = open_source(up_path, SOURCE_FORGE_NONE, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);

    /* loading from the mirror gives what loading the directory gives */
    struct spec_set from_git, from_dir;
    struct diag_list dg, dd;
    struct rv_error err;
    struct buf sg = BUF_INIT, sd = BUF_INIT;
    spec_set_init(&from_git);
    spec_set_init(&from_dir);
    diag_list_init(&dg);
    diag_list_init(&dd);
    if (source_load_specs(src, &c1, &from_git, &dg, &err) != 0)
        fail_msg("source_load_specs: %s", err.msg);
    if (spec_set_load_dir(&from_dir, quick, &dd, &err) != 0)
        fail_msg("spec_set_load_dir: %s", err.msg);
    assert_true(from_git.nclusters > 0);
    assert_true(from_git.npolicies > 0);
    assert_int_equal(dg.errors, dd.errors);
    set_summary(&from_git, &sg);
    set_summary(&from_dir, &sd);
    assert_string_equal(sg.data, sd.data);

    /* rename one cluster, delete another and re-add its content under a new
     * file with a new name, add an oversized file, touch a non-spec file */
    const struct upd *victim = NULL, *gone = NULL;
    for (size_t i = 0; i < files.len; i++) {
        const struct upd *f = &files.items[i];
        size_t n = strlen(f->path);
        if (strncmp(f->path, "clusters/", 9) != 0 || n < 5 || strcmp(f->path + n - 5, ".yaml"))
            continue;
        if (strstr(f->data, "\n  name: ") == NULL)
            continue;
        if (victim == NULL)
            victim = f;
        else if (gone == NULL)
            gone = f;
    }
    assert_non_null(victim);
    assert_non_null(gone);
    char *renamed = with_name_prefix(victim->data, 'r');
    char *moved = with_name_prefix(gone->data, 'n');
    char *huge = malloc(RV_SPEC_FILE_MAX + 2);
    assert_non_null(huge);
    memset(huge, '#', RV_SPEC_FILE_MAX + 1);
    huge[RV_SPEC_FILE_MAX + 1] = '\0';
    const struct upd u2[] = {
        {victim->path, renamed, 0, 0},         {gone->path, NULL, 0, 0},
        {"clusters/zz-new.yaml", moved, 0, 0}, {"clusters/huge.yaml", huge, 0, 0},
        {"README.md", "changed\n", 0, 0},
    };
    commit_files(up, "refs/heads/main", &c1, u2, sizeof(u2) / sizeof(u2[0]), &c2);
    free(renamed);
    free(moved);
    free(huge);
    fetch_ok(src, &res);

    struct spec_set full;
    struct diag_list di, df;
    spec_set_init(&full);
    diag_list_init(&di);
    diag_list_init(&df);
    if (source_update_specs(src, &from_git, &c1, &c2, &di, &err) != 0)
        fail_msg("source_update_specs: %s", err.msg);
    if (source_load_specs(src, &c2, &full, &df, &err) != 0)
        fail_msg("source_load_specs: %s", err.msg);
    set_summary(&from_git, &sg);
    set_summary(&full, &sd);
    assert_string_equal(sg.data, sd.data);
    assert_non_null(strstr(sg.data, "clusters/zz-new.yaml"));
    assert_null(strstr(sg.data, gone->path));
    assert_int_equal(from_git.nclusters, from_dir.nclusters); /* one gone, one added */

    /* the oversized file is an error on that file, in both paths */
    assert_int_equal(di.errors, 1);
    assert_string_equal(di.items[0].file, "clusters/huge.yaml");
    assert_non_null(strstr(di.items[0].msg, "limit"));
    assert_int_equal(df.errors, dg.errors + 1);

    spec_set_release(&full);
    diag_list_release(&di);
    diag_list_release(&df);
    buf_release(&sg);
    buf_release(&sd);
    diag_list_release(&dg);
    diag_list_release(&dd);
    spec_set_release(&from_git);
    spec_set_release(&from_dir);
    dir_files_release(&files);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* ---- smart HTTP (git http-backend behind lighttpd) ----------------------- */

struct githttp {
    char state[TPATH];
    char url[512]; /* http://127.0.0.1:<port>/git */
};

/* Servers not yet stopped: a failing test leaves its test function early,
 * so group_teardown stops whatever is still running. */
#define MAX_SERVERS 4
static char g_servers[MAX_SERVERS][TPATH];

static void githttp_run_stop(const char *state)
{
    const char *srcdir = getenv("REEVE_SOURCE_DIR");
    char cmd[3 * TPATH];
    snprintf(cmd, sizeof(cmd), "bash '%s/tests/integration/githttp.sh' stop '%s'", srcdir, state);
    if (system(cmd) != 0)
        print_message("githttp.sh stop '%s' failed\n", state);
}

static void githttp_stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i][0]) {
            githttp_run_stop(g_servers[i]);
            g_servers[i][0] = '\0';
        }
    }
}

/* Start tests/integration/githttp.sh; false (and the test is skipped) when
 * lighttpd is not installed. */
static bool githttp_start(struct githttp *h, const char *repo_root, const char *user,
                          const char *password)
{
    const char *srcdir = getenv("REEVE_SOURCE_DIR");
    if (srcdir == NULL) {
        print_message("REEVE_SOURCE_DIR is not set; skipping the HTTP test\n");
        return false;
    }
    if (access("/usr/sbin/lighttpd", X_OK) != 0 && system("command -v lighttpd >/dev/null") != 0) {
        print_message("lighttpd is not installed (scripts/deps.sh installs it); skipping\n");
        return false;
    }
    fresh_path(h->state, sizeof(h->state), "githttp");
    char cmd[4 * TPATH];
    snprintf(cmd, sizeof(cmd), "bash '%s/tests/integration/githttp.sh' start '%s' '%s' %s %s",
             srcdir, h->state, repo_root, user ? user : "", password ? password : "");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    h->url[0] = '\0';
    if (fgets(h->url, sizeof(h->url), p) == NULL)
        h->url[0] = '\0';
    int status = pclose(p);
    if (status != 0 || strncmp(h->url, "http://127.0.0.1:", 17) != 0)
        fail_msg("githttp.sh start failed (status %d); see %s/error.log", status, h->state);
    h->url[strcspn(h->url, "\n")] = '\0';
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i][0] == '\0') {
            snprintf(g_servers[i], sizeof(g_servers[i]), "%s", h->state);
            return true;
        }
    }
    fail_msg("more than %d test servers at once", MAX_SERVERS);
    return false;
}

static void githttp_stop(struct githttp *h)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (strcmp(g_servers[i], h->state) == 0)
            g_servers[i][0] = '\0';
    }
    githttp_run_stop(h->state);
}

/* A bare repository "<root>/r.git" with main and pull request 3. */
static git_repository *http_upstream(char *root, size_t size, git_oid *c1, git_oid *p3)
{
    char path[TPATH + 16];
    git_repository *up = NULL;
    fresh_path(root, size, "served");
    snprintf(path, sizeof(path), "%s/r.git", root);
    check_git(git_repository_init(&up, path, 1));
    const struct upd u[] = {{"clusters/a.yaml", "a: 1\n", 0, 0}};
    const struct upd u3[] = {{"clusters/b.yaml", "b: 1\n", 0, 0}};
    commit_files(up, "refs/heads/main", NULL, u, 1, c1);
    commit_files(up, "refs/pull/3/head", c1, u3, 1, p3);
    return up;
}

static void test_http_fetch(void **state)
{
    (void)state;
    char root[TPATH], url[1024], mirror[TPATH];
    git_oid c1, p3, c2, got;
    git_repository *up = http_upstream(root, sizeof(root), &c1, &p3);
    struct githttp h;
    if (!githttp_start(&h, root, NULL, NULL)) {
        git_repository_free(up);
        skip();
    }
    snprintf(url, sizeof(url), "%s/r.git", h.url);
    struct source *src = open_source(url, SOURCE_FORGE_GITHUB, mirror, sizeof(mirror));
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 2);
    assert_non_null(find_change(&res, SOURCE_REF_MAIN, 0));
    assert_non_null(find_change(&res, SOURCE_REF_PULL, 3));
    assert_true(res.received_bytes > 0);
    resolve_ok(src, "pull/3", &got);
    assert_oid_eq(&got, &p3);

    /* incremental: one new commit on main, pull 3 closed */
    const struct upd u2[] = {{"clusters/a.yaml", "a: 2\n", 0, 0}};
    commit_files(up, "refs/heads/main", &c1, u2, 1, &c2);
    del_ref(up, "refs/pull/3/head");
    fetch_ok(src, &res);
    assert_int_equal(res.nchanges, 2);
    assert_oid_eq(&find_change(&res, SOURCE_REF_MAIN, 0)->new_oid, &c2);
    assert_oid_zero(&find_change(&res, SOURCE_REF_PULL, 3)->new_oid);

    /* a repository the server does not have */
    struct source *missing = NULL;
    struct source_config cfg;
    source_config_init(&cfg);
    snprintf(url, sizeof(url), "%s/absent.git", h.url);
    cfg.url = url;
    fresh_path(mirror, sizeof(mirror), "mirror");
    cfg.mirror_dir = mirror;
    struct rv_error err;
    assert_int_equal(source_open(&missing, &cfg, &err), 0);
    int rc = source_fetch(missing, &res, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "absent.git"));
    source_free(missing);

    githttp_stop(&h);
    source_fetch_result_release(&res);
    source_free(src);
    git_repository_free(up);
}

/* Fetch with the given credentials; returns the code, err filled, and the
 * time it took in *ms. */
static int http_fetch_as(const char *url, enum source_auth auth, const char *user,
                         const char *secret, struct rv_error *err, uint64_t *ms)
{
    char mirror[TPATH];
    struct source_config cfg;
    source_config_init(&cfg);
    fresh_path(mirror, sizeof(mirror), "mirror");
    cfg.url = url;
    cfg.mirror_dir = mirror;
    cfg.forge = SOURCE_FORGE_GITEA;
    cfg.auth = auth;
    cfg.username = user;
    cfg.secret = secret;
    struct source *src = NULL;
    rv_error_clear(err);
    int rc = source_open(&src, &cfg, err);
    assert_int_equal(rc, 0);
    struct source_fetch_result res;
    source_fetch_result_init(&res);
    uint64_t t0 = mono_ms();
    rc = source_fetch(src, &res, err);
    *ms = mono_ms() - t0;
    if (rc == 0)
        assert_int_equal(res.nchanges, 2);
    source_fetch_result_release(&res);
    source_free(src);
    return rc;
}

static void test_http_auth(void **state)
{
    (void)state;
    char root[TPATH], url[1024];
    git_oid c1, p3;
    git_repository *up = http_upstream(root, sizeof(root), &c1, &p3);
    struct githttp h;
    /* a token for the default GitHub-style username */
    if (!githttp_start(&h, root, "x-access-token", "tok-right-123")) {
        git_repository_free(up);
        skip();
    }
    snprintf(url, sizeof(url), "%s/r.git", h.url);
    struct rv_error err;
    uint64_t ms;

    /* the right token, with the default username */
    assert_int_equal(http_fetch_as(url, SOURCE_AUTH_TOKEN, NULL, "tok-right-123", &err, &ms), 0);

    /* a wrong token: one clear error, promptly, no endless 401 loop */
    assert_int_equal(http_fetch_as(url, SOURCE_AUTH_TOKEN, NULL, "tok-wrong-456", &err, &ms),
                     RV_EAUTH);
    assert_false(err.retryable);
    char want[1200];
    snprintf(want, sizeof(want), "authentication failed for '%s' (check the token)", url);
    assert_string_equal(err.msg, want);
    assert_null(strstr(err.msg, "tok-wrong-456"));
    assert_true(ms < 10000);

    /* basic auth with a username and a wrong password */
    assert_int_equal(http_fetch_as(url, SOURCE_AUTH_BASIC, "x-access-token", "nope", &err, &ms),
                     RV_EAUTH);
    assert_non_null(strstr(err.msg, "check the username and password"));
    /* basic auth with the right pair */
    assert_int_equal(
        http_fetch_as(url, SOURCE_AUTH_BASIC, "x-access-token", "tok-right-123", &err, &ms), 0);

    /* no credentials at all */
    assert_int_equal(http_fetch_as(url, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms), RV_EAUTH);
    assert_non_null(strstr(err.msg, "requires authentication"));

    /* credentials in the URL work, and never show up in messages */
    char withcreds[1200];
    snprintf(withcreds, sizeof(withcreds), "http://x-access-token:tok-right-123@%s/r.git",
             h.url + strlen("http://"));
    assert_int_equal(http_fetch_as(withcreds, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms), 0);
    snprintf(withcreds, sizeof(withcreds), "http://x-access-token:tok-bad-789@%s/r.git",
             h.url + strlen("http://"));
    assert_int_equal(http_fetch_as(withcreds, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms), RV_EAUTH);
    assert_null(strstr(err.msg, "tok-bad-789"));
    assert_non_null(strstr(err.msg, url));

    githttp_stop(&h);
    git_repository_free(up);
}

/* Requests for repositories (not the readiness probe) in the server's access
 * log that got the given status. */
static int count_status(const struct githttp *h, int status)
{
    char path[TPATH + 16], needle[16], line[2048];
    snprintf(path, sizeof(path), "%s/access.log", h->state);
    snprintf(needle, sizeof(needle), "\" %d ", status);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL && strstr(line, " /git/") != NULL;
    fclose(f);
    return n;
}

/* libgit2 asks for credentials again after every 401; reeve answers once,
 * so a wrong token costs two requests, not libgit2's replay limit. */
static void test_http_auth_not_retried(void **state)
{
    (void)state;
    char root[TPATH], url[1024];
    git_oid c1, p3;
    git_repository *up = http_upstream(root, sizeof(root), &c1, &p3);
    struct githttp h;
    if (!githttp_start(&h, root, "reeve", "right")) {
        git_repository_free(up);
        skip();
    }
    snprintf(url, sizeof(url), "%s/r.git", h.url);
    struct rv_error err;
    uint64_t ms;
    assert_int_equal(http_fetch_as(url, SOURCE_AUTH_TOKEN, "reeve", "wrong", &err, &ms), RV_EAUTH);
    githttp_stop(&h); /* flushes the access log */
    int n401 = count_status(&h, 401);
    assert_true(n401 >= 1);
    assert_true(n401 <= 1 + RV_GIT_AUTH_ATTEMPTS);
    assert_int_equal(count_status(&h, 200), 0);
    git_repository_free(up);
}

/* A server that accepts connections and never answers: the fetch fails
 * after the I/O timeout instead of hanging, over http and https. */
static void test_http_stalled_server(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(ls, 8), 0);
    socklen_t alen = sizeof(addr);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&addr, &alen), 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/r.git", (unsigned)ntohs(addr.sin_port));

    struct rv_error err;
    uint64_t ms;
    int rc = http_fetch_as(url, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms);
    assert_int_equal(rc, RV_ETIMEOUT);
    assert_true(err.retryable);
    assert_non_null(strstr(err.msg, "did not answer for 1500 ms"));
    assert_true(ms >= TEST_IO_TIMEOUT_MS - 100);
    assert_true(ms < TEST_IO_TIMEOUT_MS * 4);

    /* the same over https: the TLS handshake runs on reeve's socket stream */
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/r.git", (unsigned)ntohs(addr.sin_port));
    rc = http_fetch_as(url, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms);
    assert_int_equal(rc, RV_ETIMEOUT);
    assert_non_null(strstr(err.msg, "did not answer"));
    assert_true(ms < TEST_IO_TIMEOUT_MS * 4);
    close(ls);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/r.git", (unsigned)ntohs(addr.sin_port));

    /* nothing listening: refused at once */
    rc = http_fetch_as(url, SOURCE_AUTH_NONE, NULL, NULL, &err, &ms);
    assert_int_equal(rc, RV_EUNAVAIL);
    assert_true(ms < 5000);
}

/* ---- main ------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof(g_root), "%s/reeve-test-source-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(g_root) == NULL)
        return -1;
    struct rv_error err;
    if (source_global_init(TEST_IO_TIMEOUT_MS, &err) != 0) {
        fprintf(stderr, "source_global_init: %s\n", err.msg);
        return -1;
    }
    log_set_level(LOG_ERROR);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    githttp_stop_all();
    source_global_shutdown();
    rm_rf(g_root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_forge_parse),
        cmocka_unit_test(test_url_userinfo_hidden),
        cmocka_unit_test(test_local_path_fetch),
        cmocka_unit_test(test_file_url_fetch),
        cmocka_unit_test(test_pull_refs_github),
        cmocka_unit_test(test_pull_refs_gitlab),
        cmocka_unit_test(test_forge_none_mirrors_main_only),
        cmocka_unit_test(test_missing_main_branch),
        cmocka_unit_test(test_fetch_busy),
        cmocka_unit_test(test_fetch_deadline),
        cmocka_unit_test(test_readers_during_fetch),
        cmocka_unit_test(test_resolve_and_merge_base),
        cmocka_unit_test(test_is_spec_path),
        cmocka_unit_test(test_changed_files),
        cmocka_unit_test(test_list_spec_files),
        cmocka_unit_test(test_list_named_files),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_load_and_update_specs),
        cmocka_unit_test(test_http_fetch),
        cmocka_unit_test(test_http_auth),
        cmocka_unit_test(test_http_auth_not_retried),
        cmocka_unit_test(test_http_stalled_server),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
