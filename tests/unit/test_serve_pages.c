/* test_serve_pages.c - reconciler/pages and reconciler/metrics: the plan
 * JSON written in chunks equals plan_to_json's, pages survive storage, the
 * HTML escapes user data, and the metrics text is well formed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "diag.h"
#include "metrics.h"
#include "pages.h"
#include "planner.h"
#include "spec.h"
#include "store.h"

struct fx {
    struct spec_set set;
    struct diag_list diags;
    struct plan plan;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rv_error err = {0};
    char path[1024];
    const char *src = getenv("REEVE_SOURCE_DIR");
    spec_set_init(&f->set);
    diag_list_init(&f->diags);
    plan_init(&f->plan);
    *state = f;
    if (src == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/examples/quickstart", src);
    assert_int_equal(spec_set_load_dir(&f->set, path, &f->diags, &err), 0);
    spec_set_check(&f->set, &f->diags);
    assert_int_equal(f->diags.errors, 0);
    struct plan_opts opts = {.head = "1111111111111111111111111111111111111111",
                             .observed_revision = "none",
                             .now = 1800000000};
    assert_int_equal(plan_build(&f->plan, &f->set, NULL, &opts, &err), 0);
    assert_true(f->plan.nactions > 10);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    plan_release(&f->plan);
    diag_list_release(&f->diags);
    spec_set_release(&f->set);
    free(f);
    return 0;
}

#define NEED_PLAN(f)                                                                               \
    do {                                                                                           \
        if ((f)->plan.nactions == 0)                                                               \
            skip();                                                                                \
    } while (0)

static void test_chunked_json_equals_plan_to_json(void **state)
{
    struct fx *f = *state;
    NEED_PLAN(f);
    json_t *j = plan_to_json(&f->plan);
    char *want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    for (size_t chunk = 0; chunk <= f->plan.nactions + 1; chunk++) {
        struct buf b = BUF_INIT;
        assert_int_equal(pages_plan_json(&b, &f->plan, chunk, NULL, NULL), 0);
        assert_string_equal(b.data, want);
        buf_release(&b);
    }
    free(want);

    struct plan empty;
    plan_init(&empty);
    struct buf b = BUF_INIT;
    assert_int_equal(pages_plan_json(&b, &empty, 0, NULL, NULL), 0);
    j = plan_to_json(&empty);
    want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(b.data, want);
    free(want);
    json_decref(j);
    buf_release(&b);
}

static int collect(const char *data, size_t len, void *payload)
{
    struct buf *b = payload;
    assert_true(len > 0);
    return buf_append(b, data, len);
}

static char *text_of(const struct pages_doc *doc)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    assert_int_equal(pages_doc_text(f, doc), 0);
    fclose(f);
    return mem;
}

static void test_doc_json_and_text(void **state)
{
    struct fx *f = *state;
    NEED_PLAN(f);
    struct diag_list d;
    diag_list_init(&d);
    diag_add(&d, DIAG_WARNING, "clusters/a.yaml", 3, 5, "spec.x", "odd \"quote\" <b>");
    struct pages_doc doc = {.sha = "1111111111111111111111111111111111111111",
                            .base = "2222222222222222222222222222222222222222",
                            .pull_request = true,
                            .number = 12,
                            .diags = &d,
                            .plan = &f->plan};
    struct buf b = BUF_INIT, pieces = BUF_INIT, scratch = BUF_INIT;
    assert_int_equal(pages_doc_json(&b, &doc, false, NULL, NULL), 0);
    /* written in pieces, the same bytes */
    assert_int_equal(pages_doc_json(&scratch, &doc, false, collect, &pieces), 0);
    assert_int_equal(scratch.len, 0);
    assert_string_equal(pieces.data, b.data);
    json_t *j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "pull_request");
    assert_int_equal(json_integer_value(json_object_get(j, "pull_request")), 12);
    json_t *v = json_object_get(j, "validation");
    assert_true(json_is_true(json_object_get(v, "valid")));
    assert_int_equal(json_integer_value(json_object_get(v, "warnings")), 1);
    json_t *p = plan_to_json(&f->plan);
    assert_true(json_equal(p, json_object_get(j, "plan")));
    /* keys in the contract's order, plan last */
    const char *keys[] = {"sha", "base", "kind", "pull_request", "validation", "plan"};
    const char *at = b.data;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char k[32];
        snprintf(k, sizeof(k), "\"%s\":", keys[i]);
        const char *next = strstr(at, k);
        assert_non_null(next);
        at = next;
    }
    json_decref(j);

    /* the head: the same but the plan's actions */
    struct buf head = BUF_INIT;
    assert_int_equal(pages_doc_json(&head, &doc, true, NULL, NULL), 0);
    j = json_loads(head.data, 0, NULL);
    json_t *hp = json_object_get(j, "plan");
    assert_null(json_object_get(hp, "actions"));
    assert_true(json_equal(json_object_get(hp, "summary"), json_object_get(p, "summary")));
    json_decref(j);
    json_decref(p);

    char *text = text_of(&doc);
    assert_non_null(strstr(text, "Plan: "));

    /* rendered: escaped, with the diagnostic and the text */
    struct buf html = BUF_INIT;
    assert_int_equal(pages_render_html(&html, doc.sha, head.data, text, "ma<in"), 0);
    assert_non_null(strstr(html.data, "odd &quot;quote&quot; &lt;b&gt;"));
    assert_non_null(strstr(html.data, "<code>ma&lt;in</code>"));
    assert_null(strstr(html.data, "<b>"));
    assert_non_null(strstr(html.data, "Head of pull request #12"));
    assert_non_null(strstr(html.data, "<a href=\"2222222222222222222222222222222222222222\">"));
    buf_release(&html);
    free(text);

    /* unplanned: plan null and a line saying why */
    doc.plan = NULL;
    doc.plan_error = "cluster 'a/b' has too many nodes";
    buf_clear(&b);
    assert_int_equal(pages_doc_json(&b, &doc, false, NULL, NULL), 0);
    j = json_loads(b.data, 0, NULL);
    assert_true(json_is_null(json_object_get(j, "plan")));
    assert_string_equal(json_string_value(json_object_get(j, "plan_error")), doc.plan_error);
    json_decref(j);
    text = text_of(&doc);
    assert_string_equal(text, "not planned: cluster 'a/b' has too many nodes\n");
    free(text);
    buf_release(&head);
    buf_release(&b);
    buf_release(&pieces);
    buf_release(&scratch);
    diag_list_release(&d);
}

static void test_store_round_trip(void **state)
{
    struct fx *f = *state;
    struct db *db = NULL;
    struct rv_error err = {0};
    struct pages_page pg = {0};
    struct diag_list d;
    int64_t id1 = 0, id2 = 0, deleted = 0;
    NEED_PLAN(f);
    diag_list_init(&d);
    assert_int_equal(store_open(&db, ":memory:", NULL, &err), 0);
    const char *sha = "3333333333333333333333333333333333333333";
    assert_int_equal(pages_store_get(&pg, db, sha, true, true, &err), RV_ENOTFOUND);
    struct pages_doc doc = {.sha = sha, .diags = &d, .plan_error = "first"};
    assert_int_equal(pages_store(&id1, db, &doc, 100, &err), 0);
    doc.plan_error = NULL;
    doc.plan = &f->plan;
    doc.base = "4444444444444444444444444444444444444444";
    assert_int_equal(pages_store(&id2, db, &doc, 200, &err), 0);
    assert_true(id2 > id1);

    /* the newest page wins; JSON and text come back as written */
    assert_int_equal(pages_store_get(&pg, db, sha, true, true, &err), 0);
    struct buf want = BUF_INIT;
    assert_int_equal(pages_doc_json(&want, &doc, false, NULL, NULL), 0);
    assert_int_equal(pg.json_len, want.len);
    assert_string_equal(pg.json, want.data);
    char *text = text_of(&doc);
    assert_string_equal(pg.text, text);
    assert_int_equal(pg.text_len, strlen(text));
    json_t *h = json_loads(pg.head, 0, NULL);
    assert_non_null(json_object_get(json_object_get(h, "plan"), "summary"));
    json_decref(h);
    free(text);
    buf_release(&want);
    pages_page_release(&pg);
    /* only what is asked for is decompressed */
    assert_int_equal(pages_store_get(&pg, db, sha, false, true, &err), 0);
    assert_null(pg.json);
    assert_non_null(pg.text);
    pages_page_release(&pg);

    /* pruning keeps the newest of each commit, and its compressed page */
    assert_int_equal(pages_store_prune(&deleted, db, 1000, &err), 0);
    assert_int_equal(deleted, 1);
    int64_t n = 0;
    assert_int_equal(db_query_i64(&n, db, &err, "SELECT count(*) FROM plan_pages", NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pages_store_get(&pg, db, sha, true, false, &err), 0);
    pages_page_release(&pg);

    /* a damaged row is an error, not a crash */
    assert_int_equal(db_run(db, &err, "UPDATE plan_pages SET json_zst = x'28b52ffd0000'", NULL), 0);
    assert_int_equal(pages_store_get(&pg, db, sha, true, false, &err), RV_EPARSE);
    db_free(db);
    diag_list_release(&d);
}

static void test_sha_and_escape(void **state)
{
    (void)state;
    assert_true(pages_sha_valid("0123456789abcdef0123456789abcdef01234567"));
    assert_true(
        pages_sha_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(pages_sha_valid("0123456789ABCDEF0123456789abcdef01234567"));
    assert_false(pages_sha_valid("0123456789abcdef"));
    assert_false(pages_sha_valid("../../etc/passwd"));
    struct buf b = BUF_INIT;
    assert_int_equal(pages_html_escape(&b, "<a href='x'>&\"</a>"), 0);
    assert_string_equal(b.data, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
    buf_release(&b);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct metrics m = {0};
    struct buf b = BUF_INIT;
    metrics_observe(&m.reconcile_duration, 0.003);
    metrics_observe(&m.reconcile_duration, 0.2);
    metrics_observe(&m.reconcile_duration, 100);
    m.webhooks.malformed = 4;
    m.clusters_desired = 10000;
    assert_int_equal(metrics_render(&b, &m), 0);
    assert_non_null(strstr(b.data, "reeve_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(b.data, "reeve_reconcile_duration_seconds_bucket{le=\"0.25\"} 2\n"));
    assert_non_null(strstr(b.data, "reeve_reconcile_duration_seconds_bucket{le=\"60\"} 2\n"));
    assert_non_null(strstr(b.data, "reeve_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data, "reeve_reconcile_duration_seconds_count 3\n"));
    assert_non_null(strstr(b.data, "reeve_webhooks_total{result=\"malformed\"} 4\n"));
    assert_non_null(strstr(b.data, "reeve_clusters_desired 10000\n"));
    static const char *names[] = {
        "reeve_reconcile_passes_total",   "reeve_git_fetch_duration_seconds",
        "reeve_git_fetch_failures_total", "reeve_statuses_posted_total",
        "reeve_statuses_failed_total",    "reeve_webhooks_total"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char help[128];
        snprintf(help, sizeof(help), "# HELP %s ", names[i]);
        assert_non_null(strstr(b.data, help));
    }
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunked_json_equals_plan_to_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doc_json_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_round_trip, setup, teardown),
        cmocka_unit_test(test_sha_and_escape),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
