/* test_config.c - reconciler/config: reeve.yaml parsing, defaults, secret
 * references, and that every error points at file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "diag.h"
#include "err.h"
#include "tutil.h"

#define FILE_NAME "/etc/reeve/reeve.yaml"

struct fx {
    struct config c;
    struct diag_list d;
    struct rv_error err;
    char dir[64];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    config_init(&f->c);
    diag_list_init(&f->d);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rv-config-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    setenv("RV_TEST_TOKEN", "tok-123", 1);
    setenv("RV_TEST_HOOK", "hook-456", 1);
    unsetenv("RV_TEST_UNSET");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    config_release(&f->c);
    diag_list_release(&f->d);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static int parse(struct fx *f, const char *yaml)
{
    diag_list_release(&f->d);
    diag_list_init(&f->d);
    rv_error_clear(&f->err);
    return config_parse(&f->c, FILE_NAME, yaml, strlen(yaml), &f->d, &f->err);
}

/* Exactly one error, printed as want (file:line:col: error: path: ...). */
static void expect_error(struct fx *f, const char *yaml, const char *want_prefix)
{
    int rc = parse(f, yaml);
    char *text = tu_printed(&f->d);
    if (rc != RV_EINVAL || f->d.errors != 1 || strncmp(text, want_prefix, strlen(want_prefix)))
        fail_msg("config:\n%s\nwanted one error starting '%s', got rc %d:\n%s", yaml, want_prefix,
                 rc, text);
    /* Every error names the file and a 1-based line and column. */
    for (size_t i = 0; i < f->d.len; i++) {
        assert_string_equal(f->d.items[i].file, FILE_NAME);
        assert_true(f->d.items[i].line > 0);
        assert_true(f->d.items[i].col > 0);
    }
    free(text);
}

static const char contract[] = "# reeve.yaml\n"
                               "listen: 127.0.0.1:8080          # host:port\n"
                               "publicURL: http://127.0.0.1:8080/   # base of target_url links\n"
                               "dataDir: /var/lib/reeve\n"
                               "log: {level: debug, format: json}\n"
                               "repository:\n"
                               "  url: file:///srv/git/specs.git\n"
                               "  branch: trunk\n"
                               "  pollInterval: 0\n"
                               "  auth: {kind: none}\n"
                               "forge:\n"
                               "  kind: github\n"
                               "  apiURL: http://127.0.0.1:9001/\n"
                               "  repository: acme/specs\n"
                               "  tokenRef: env:RV_TEST_TOKEN\n"
                               "  webhookSecretRef: env:RV_TEST_HOOK\n"
                               "ticks: {base: 10, fast: 1}\n";

static void test_contract_example(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f, contract), 0);
    assert_int_equal(f->d.len, 0);
    assert_string_equal(f->c.listen, "127.0.0.1:8080");
    assert_string_equal(f->c.public_url, "http://127.0.0.1:8080");
    assert_string_equal(f->c.data_dir, "/var/lib/reeve");
    assert_int_equal(f->c.log_level, LOG_DEBUG);
    assert_true(f->c.log_json);
    assert_string_equal(f->c.repository.url, "file:///srv/git/specs.git");
    assert_string_equal(f->c.repository.branch, "trunk");
    assert_int_equal(f->c.repository.poll_interval_s, 0);
    assert_int_equal(f->c.repository.auth, SOURCE_AUTH_NONE);
    assert_null(f->c.repository.secret);
    assert_int_equal(f->c.forge.kind, SOURCE_FORGE_GITHUB);
    assert_string_equal(config_forge_name(&f->c), "github");
    assert_string_equal(f->c.forge.api_url, "http://127.0.0.1:9001");
    assert_string_equal(f->c.forge.repository, "acme/specs");
    assert_string_equal(f->c.forge.token, "tok-123");
    assert_string_equal(f->c.forge.webhook_secret, "hook-456");
    assert_int_equal(f->c.ticks.base_s, 10);
    assert_int_equal(f->c.ticks.fast_s, 1);
}

static void test_defaults(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f, "dataDir: state\nrepository: {url: ../specs}\n"), 0);
    assert_string_equal(f->c.listen, "127.0.0.1:8080");
    assert_null(f->c.public_url);
    /* relative paths are relative to the file's directory */
    assert_string_equal(f->c.data_dir, "/etc/reeve/state");
    assert_string_equal(f->c.repository.url, "/etc/reeve/../specs");
    assert_string_equal(f->c.repository.branch, "main");
    assert_int_equal(f->c.repository.poll_interval_s, 60);
    assert_int_equal(f->c.log_level, LOG_INFO);
    assert_false(f->c.log_json);
    assert_int_equal(f->c.forge.kind, SOURCE_FORGE_NONE);
    assert_string_equal(config_forge_name(&f->c), "none");
    assert_null(f->c.forge.token);
    assert_int_equal(f->c.ticks.base_s, 10);
    assert_int_equal(f->c.ticks.fast_s, 1);
}

static void test_github_api_default(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f,
                           "dataDir: /d\nrepository: {url: 'https://git.example/a.git'}\n"
                           "forge: {kind: github, repository: a/b, tokenRef: env:RV_TEST_TOKEN}\n"),
                     0);
    assert_string_equal(f->c.forge.api_url, "https://api.github.com");
    assert_null(f->c.forge.webhook_secret);
}

static void test_gitlab_numeric_project(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f,
                           "dataDir: /d\nrepository: {url: /r}\nforge: {kind: gitlab, apiURL: "
                           "'https://gl.example', repository: 42, tokenRef: env:RV_TEST_TOKEN}\n"),
                     0);
    assert_string_equal(f->c.forge.repository, "42");
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge: {kind: gitlab, apiURL: "
                 "'https://gl.example', repository: 0, tokenRef: env:RV_TEST_TOKEN}\n",
                 FILE_NAME ":3:65: error: forge.repository:");
}

static void test_schema_errors(void **state)
{
    struct fx *f = *state;
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nlisten2: x\n",
                 FILE_NAME ":3:1: error: listen2: unknown field");
    expect_error(f, "dataDir: /d\nrepository:\n  url: /r\n  pollInterval: soon\n",
                 FILE_NAME ":4:17: error: repository.pollInterval:");
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nforge: {kind: bitbucket}\n",
                 FILE_NAME ":3:15: error: forge.kind:");
    expect_error(f, "repository: {url: /r}\n", FILE_NAME ":1:1: error: ");
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nlog: {format: xml}\n",
                 FILE_NAME ":3:15: error: log.format:");
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: gitea\n  apiURL: "
                 "'https://g.example'\n  repository: a/b\n  tokenRef: vault:x\n",
                 FILE_NAME ":7:13: error: forge.tokenRef: must be env:NAME or file:PATH");
    expect_error(f, "dataDir: /d\nrepository: {url: 'ssh://git@x/y'}\n",
                 FILE_NAME ":2:19: error: repository.url:");
}

static void test_semantic_errors(void **state)
{
    struct fx *f = *state;
    expect_error(f, "listen: 10.0.0.1:8080\ndataDir: /d\nrepository: {url: /r}\n",
                 FILE_NAME ":1:9: error: listen: '10.0.0.1' is not a loopback address");
    expect_error(f, "listen: 127.0.0.1:99999\ndataDir: /d\nrepository: {url: /r}\n",
                 FILE_NAME ":1:9: error: listen: port '99999'");
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nticks: {base: 2, fast: 5}\n",
                 FILE_NAME ":3:24: error: ticks.fast: the fast tick (5s) is slower");
    expect_error(f, "dataDir: /d\nrepository: {url: /r, pollInterval: 0}\n",
                 FILE_NAME ":2:37: error: repository.pollInterval: pollInterval 0");
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: gitlab\n"
                 "  repository: '42'\n  tokenRef: env:RV_TEST_TOKEN\n",
                 FILE_NAME ":4:3: error: forge.apiURL: forge 'gitlab' needs apiURL");
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: github\n"
                 "  repository: a/b\n",
                 FILE_NAME ":4:3: error: forge.tokenRef: forge 'github' needs tokenRef");
    expect_error(f, "dataDir: /d\nrepository:\n  url: 'https://x/y.git'\n  auth: {kind: token}\n",
                 FILE_NAME ":4:9: error: repository.auth: auth kind 'token' needs a secretRef");
    expect_error(f,
                 "dataDir: /d\nrepository:\n  url: /local/repo\n  auth: {kind: token, "
                 "secretRef: env:RV_TEST_TOKEN}\n",
                 FILE_NAME ":3:8: error: repository.url: credentials are sent over HTTP(S) only");
}

/* Every problem is reported at once, schema or not, each once. */
static void test_all_errors_at_once(void **state)
{
    struct fx *f = *state;
    int rc = parse(f, "listen: 0.0.0.0:80\ndataDir: /d\nrepository:\n  url: /r\n"
                      "  pollIntervall: 5\nforge: {kind: github, repository: a/b, "
                      "tokenRef: env:RV_TEST_UNSET}\n");
    assert_int_equal(rc, RV_EINVAL);
    char *text = tu_printed(&f->d);
    assert_string_equal(text,
                        FILE_NAME ":1:9: error: listen: '0.0.0.0' is not a loopback address; reeve "
                                  "listens on 127.0.0.0/8 or [::1] only, put a reverse proxy in "
                                  "front for other clients\n" FILE_NAME
                                  ":5:3: error: repository.pollIntervall: unknown field "
                                  "'pollIntervall' (did you mean 'pollInterval'?)\n" FILE_NAME
                                  ":6:50: error: forge.tokenRef: environment variable "
                                  "'RV_TEST_UNSET' is not set; export it, or use file:PATH\n");
    free(text);
    assert_string_equal(f->err.msg, "'" FILE_NAME "' has 3 errors");
}

static void test_env_secret_missing(void **state)
{
    struct fx *f = *state;
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: github\n  repository: a/b\n"
                 "  tokenRef: env:RV_TEST_UNSET\n",
                 FILE_NAME ":6:13: error: forge.tokenRef: environment variable 'RV_TEST_UNSET' "
                           "is not set; export it, or use file:PATH");
    setenv("RV_TEST_EMPTY", "", 1);
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: github\n  repository: a/b\n"
                 "  tokenRef: env:RV_TEST_TOKEN\n  webhookSecretRef: env:RV_TEST_EMPTY\n",
                 FILE_NAME ":7:21: error: forge.webhookSecretRef: environment variable "
                           "'RV_TEST_EMPTY' is empty");
}

static void write_file(const char *path, const char *data)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(data, out);
    fclose(out);
}

static void test_file_secrets(void **state)
{
    struct fx *f = *state;
    char yaml[1024], path[128], cfg[128];
    snprintf(path, sizeof(path), "%s/token", f->dir);
    write_file(path, "file-token-789\n\n");
    snprintf(yaml, sizeof(yaml),
             "dataDir: data\nrepository:\n  url: 'https://git.example/x.git'\n"
             "  auth: {kind: basic, username: bot, secretRef: 'file:token'}\n"
             "forge: {kind: gitea, apiURL: 'https://gitea.example', repository: a/b, "
             "tokenRef: 'file:%s'}\n",
             path);
    /* config_load: relative file: paths and dataDir resolve against the file's dir */
    snprintf(cfg, sizeof(cfg), "%s/reeve.yaml", f->dir);
    write_file(cfg, yaml);
    assert_int_equal(config_load(&f->c, cfg, &f->d, &f->err), 0);
    assert_string_equal(f->c.forge.token, "file-token-789");
    assert_string_equal(f->c.repository.secret, "file-token-789");
    assert_string_equal(f->c.repository.username, "bot");
    assert_int_equal(f->c.repository.auth, SOURCE_AUTH_BASIC);
    char want[128];
    snprintf(want, sizeof(want), "%s/data", f->dir);
    assert_string_equal(f->c.data_dir, want);

    /* missing, empty and oversized files */
    expect_error(f,
                 "dataDir: /d\nrepository: {url: /r}\nforge: {kind: github, repository: a/b, "
                 "tokenRef: 'file:/nonexistent/tok'}\n",
                 FILE_NAME ":3:50: error: forge.tokenRef: cannot read '/nonexistent/tok': No such "
                           "file or directory");
    snprintf(path, sizeof(path), "%s/empty", f->dir);
    write_file(path, "\n");
    snprintf(yaml, sizeof(yaml),
             "dataDir: /d\nrepository: {url: /r}\nforge: {kind: github, repository: a/b, "
             "tokenRef: 'file:%s'}\n",
             path);
    expect_error(f, yaml, FILE_NAME ":3:50: error: forge.tokenRef: '");
    assert_non_null(strstr(f->d.items[0].msg, "is empty"));
}

/* A secret's value never appears in a message, even next to other errors. */
static void test_secret_never_in_messages(void **state)
{
    struct fx *f = *state;
    setenv("RV_TEST_SECRET", "hunter2-very-secret", 1);
    int rc = parse(f, "listen: 8.8.8.8:80\ndataDir: /d\nrepository: {url: /r}\n"
                      "forge: {kind: github, repository: a/b, tokenRef: env:RV_TEST_SECRET, "
                      "webhookSecretRef: env:RV_TEST_SECRET}\nticks: {base: 1, fast: 2}\n");
    assert_int_equal(rc, RV_EINVAL);
    char *text = tu_printed(&f->d);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(f->err.msg, "hunter2"));
    assert_int_equal(f->d.errors, 2);
    free(text);
    /* and a failed parse leaves no secret behind */
    assert_null(f->c.forge.token);
}

static void test_document_shape(void **state)
{
    struct fx *f = *state;
    expect_error(f, "", FILE_NAME ":1:1: error: the configuration must be a mapping");
    expect_error(f, "- a\n- b\n", FILE_NAME ":1:1: error: the configuration must be a mapping");
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\n---\ndataDir: /e\n",
                 FILE_NAME ":4:1: error: reeve.yaml holds one document");
    expect_error(f, "dataDir: /d\nrepository: {url: /r\n", FILE_NAME ":");
    expect_error(f, "dataDir: /d\ndataDir: /e\nrepository: {url: /r}\n", FILE_NAME ":2:1:");
}

static void test_warnings_for_unused_forge_keys(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f, "dataDir: /d\nrepository: {url: /r}\nforge:\n  kind: none\n"
                              "  tokenRef: env:RV_TEST_TOKEN\n"),
                     0);
    assert_int_equal(f->d.warnings, 1);
    assert_int_equal(f->d.items[0].line, 5);
    assert_null(f->c.forge.token);
}

static void test_load_missing_file(void **state)
{
    struct fx *f = *state;
    assert_int_equal(config_load(&f->c, "/nonexistent/reeve.yaml", &f->d, &f->err), RV_EIO);
    assert_int_equal(f->d.errors, 1);
    assert_string_equal(f->d.items[0].file, "/nonexistent/reeve.yaml");
    assert_non_null(strstr(f->err.msg, "/nonexistent/reeve.yaml"));
}

/* Control rods: limits and ticks reach the config as written (serve.c
 * hands them to the executor); zero means the executor's defaults, and
 * out-of-range values are refused. */
static void test_control_rods(void **state)
{
    struct fx *f = *state;
    assert_int_equal(parse(f, "dataDir: /d\nrepository: {url: /r}\n"
                              "limits: {maxConcurrentActions: 6, perProvider: 3, perCluster: 2}\n"
                              "ticks: {base: 20, fast: 5}\n"),
                     0);
    assert_int_equal(f->c.limits.max_concurrent, 6);
    assert_int_equal(f->c.limits.per_provider, 3);
    assert_int_equal(f->c.limits.per_cluster, 2);
    assert_int_equal(f->c.ticks.base_s, 20);
    assert_int_equal(f->c.ticks.fast_s, 5);
    config_release(&f->c);
    config_init(&f->c);
    assert_int_equal(parse(f, "dataDir: /d\nrepository: {url: /r}\n"), 0);
    assert_int_equal(f->c.limits.max_concurrent, 0);
    assert_int_equal(f->c.limits.per_provider, 0);
    assert_int_equal(f->c.limits.per_cluster, 0);
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nlimits: {perProvider: 0}\n",
                 FILE_NAME ":3:23: error: limits.perProvider:");
    expect_error(f, "dataDir: /d\nrepository: {url: /r}\nlimits: {maxConcurrentActions: 65}\n",
                 FILE_NAME ":3:32: error: limits.maxConcurrentActions:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contract_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_rods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_github_api_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gitlab_numeric_project, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semantic_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_errors_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_secret_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_never_in_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warnings_for_unused_forge_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
