/* test_doc.c - lib/doc: positions, YAML 1.2 core-schema resolution, tags,
 * anchors and merge keys, duplicate keys, every limit and hostile input, with
 * the exact message and file:line:col a user would see. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "doc.h"
#include "err.h"
#include "limits.h"

/* ------------------------------------------------------------ helpers */

static struct doc_file *parse_ok(enum doc_format fmt, const char *text)
{
    struct diag_list d;
    struct doc_file *f = NULL;
    diag_list_init(&d);
    int rc =
        doc_parse(&f, fmt, fmt == DOC_FORMAT_JSON ? "t.json" : "t.yaml", text, strlen(text), &d);
    if (rc != 0 && d.len > 0)
        print_error("unexpected error: %s:%u:%u: %s\n", d.items[0].file, d.items[0].line,
                    d.items[0].col, d.items[0].msg);
    assert_int_equal(rc, 0);
    assert_non_null(f);
    assert_int_equal(d.len, 0);
    diag_list_release(&d);
    return f;
}

static struct doc_file *yaml_ok(const char *text)
{
    return parse_ok(DOC_FORMAT_YAML, text);
}

/* The first diagnostic as the user sees it: "file:line:col: error: msg". */
static char *first_diag(const struct diag_list *d)
{
    char *out = NULL;
    size_t len = 0;
    assert_true(d->len >= 1);
    FILE *m = open_memstream(&out, &len);
    assert_non_null(m);
    diag_print(m, &d->items[0]);
    fclose(m);
    if (len > 0 && out[len - 1] == '\n')
        out[len - 1] = '\0';
    return out;
}

static void expect_error_n(enum doc_format fmt, const char *text, size_t len, int want_rc,
                           const char *want)
{
    struct diag_list d;
    struct doc_file *f = (struct doc_file *)1;
    diag_list_init(&d);
    int rc = doc_parse(&f, fmt, fmt == DOC_FORMAT_JSON ? "t.json" : "t.yaml", text, len, &d);
    assert_null(f);
    char *got = first_diag(&d);
    assert_string_equal(got, want);
    assert_int_equal(rc, want_rc);
    assert_int_equal(d.errors, 1);
    free(got);
    diag_list_release(&d);
}

static void yaml_error(const char *text, int want_rc, const char *want)
{
    expect_error_n(DOC_FORMAT_YAML, text, strlen(text), want_rc, want);
}

static void json_error(const char *text, int want_rc, const char *want)
{
    expect_error_n(DOC_FORMAT_JSON, text, strlen(text), want_rc, want);
}

static void expect_pos(const struct doc_node *n, unsigned line, unsigned col)
{
    assert_non_null(n);
    if (n->line != line || n->col != col)
        print_error("position %u:%u, expected %u:%u\n", n->line, n->col, line, col);
    assert_int_equal(n->line, line);
    assert_int_equal(n->col, col);
}

static void expect_str(const struct doc_node *n, const char *s)
{
    assert_non_null(n);
    assert_int_equal(n->kind, DOC_STRING);
    assert_int_equal(n->u.str.len, strlen(s));
    assert_string_equal(n->u.str.s, s);
}

static void expect_int(const struct doc_node *n, int64_t v)
{
    assert_non_null(n);
    assert_int_equal(n->kind, DOC_INT);
    assert_true(n->u.i == v);
}

static const struct doc_node *at(const struct doc_node *seq, size_t i)
{
    assert_non_null(seq);
    assert_int_equal(seq->kind, DOC_SEQ);
    assert_true(i < seq->u.seq.len);
    return seq->u.seq.items[i];
}

static const struct doc_node *get(const struct doc_node *map, const char *key)
{
    const struct doc_node *v = doc_map_get(map, key);
    if (v == NULL)
        print_error("no key '%s'\n", key);
    assert_non_null(v);
    return v;
}

static const struct doc_node *root(const struct doc_file *f)
{
    assert_int_equal(f->ndocs, 1);
    return f->docs[0];
}

static void put_repeat(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf_puts(b, s), 0);
}

/* ------------------------------------------------------------ positions */

static void test_positions_nested(void **state)
{
    (void)state;
    const char *text = "apiVersion: reeve/v1\n"
                       "kind: DatabaseCluster\n"
                       "metadata: {name: billing, namespace: payments}\n"
                       "spec:\n"
                       "  engine: postgresql\n"
                       "  version: \"15\"\n"
                       "  instances: 3\n"
                       "  users:\n"
                       "    - name: app\n"
                       "      roles: [readwrite, admin]\n";
    struct doc_file *f = yaml_ok(text);
    const struct doc_node *r = root(f);
    assert_string_equal(f->path, "t.yaml");
    assert_int_equal(r->kind, DOC_MAP);
    expect_pos(r, 1, 1);
    assert_int_equal(r->u.map.len, 4);

    const struct doc_node *meta = get(r, "metadata");
    assert_int_equal(meta->kind, DOC_MAP);
    expect_pos(meta, 3, 11);
    expect_pos(doc_map_get_pair(meta, "namespace")->key, 3, 27);
    expect_str(get(meta, "namespace"), "payments");
    expect_pos(get(meta, "namespace"), 3, 38);

    const struct doc_pair *sp = doc_map_get_pair(r, "spec");
    expect_pos(sp->key, 4, 1);
    const struct doc_node *spec = sp->value;
    expect_pos(spec, 5, 3);
    expect_str(get(spec, "engine"), "postgresql");
    expect_pos(get(spec, "engine"), 5, 11);
    expect_str(get(spec, "version"), "15");
    expect_pos(get(spec, "version"), 6, 12);
    expect_int(get(spec, "instances"), 3);
    expect_pos(get(spec, "instances"), 7, 14);

    const struct doc_node *users = get(spec, "users");
    expect_pos(users, 9, 5);
    const struct doc_node *u0 = at(users, 0);
    assert_int_equal(u0->kind, DOC_MAP);
    expect_pos(u0, 9, 7);
    const struct doc_node *roles = get(u0, "roles");
    expect_pos(roles, 10, 14);
    expect_str(at(roles, 1), "admin");
    expect_pos(at(roles, 1), 10, 26);
    doc_file_free(f);
}

static void test_positions_crlf_and_bom(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: 1\r\nb:\r\n  c: 2\r\n");
    const struct doc_node *c = get(get(root(f), "b"), "c");
    expect_int(c, 2);
    expect_pos(c, 3, 6);
    doc_file_free(f);

    /* A UTF-8 byte-order mark is skipped and takes no column. */
    f = yaml_ok("\xef\xbb\xbf"
                "a: 1\nb: [x, \xc3\xa9t\xc3\xa9, y]\n");
    expect_pos(root(f), 1, 1);
    expect_pos(get(root(f), "a"), 1, 4);
    expect_str(at(get(root(f), "b"), 1), "\xc3\xa9t\xc3\xa9");
    /* Columns count characters, not bytes. */
    expect_pos(at(get(root(f), "b"), 2), 2, 13);
    doc_file_free(f);

    f = parse_ok(DOC_FORMAT_JSON, "\xef\xbb\xbf{\"a\": 1}");
    expect_pos(get(root(f), "a"), 1, 7);
    doc_file_free(f);
}

/* ------------------------------------------------------------ core schema */

struct resolve_case {
    const char *text;
    enum doc_kind kind;
    int64_t i;
    double f;
};

static void test_core_schema_table(void **state)
{
    (void)state;
    static const struct resolve_case cases[] = {
        {"", DOC_NULL, 0, 0},
        {"~", DOC_NULL, 0, 0},
        {"null", DOC_NULL, 0, 0},
        {"Null", DOC_NULL, 0, 0},
        {"NULL", DOC_NULL, 0, 0},
        {"true", DOC_BOOL, 1, 0},
        {"True", DOC_BOOL, 1, 0},
        {"TRUE", DOC_BOOL, 1, 0},
        {"false", DOC_BOOL, 0, 0},
        {"False", DOC_BOOL, 0, 0},
        {"FALSE", DOC_BOOL, 0, 0},
        /* YAML 1.1 booleans and near misses are strings in 1.2. */
        {"yes", DOC_STRING, 0, 0},
        {"no", DOC_STRING, 0, 0},
        {"on", DOC_STRING, 0, 0},
        {"off", DOC_STRING, 0, 0},
        {"y", DOC_STRING, 0, 0},
        {"tRUE", DOC_STRING, 0, 0},
        {"nULL", DOC_STRING, 0, 0},
        {"15", DOC_INT, 15, 0},
        {"-15", DOC_INT, -15, 0},
        {"+15", DOC_INT, 15, 0},
        {"0", DOC_INT, 0, 0},
        {"007", DOC_INT, 7, 0},
        {"0o17", DOC_INT, 15, 0},
        {"0x1F", DOC_INT, 31, 0},
        {"0xff", DOC_INT, 255, 0},
        {"9223372036854775807", DOC_INT, INT64_MAX, 0},
        {"-9223372036854775808", DOC_INT, INT64_MIN, 0},
        {"0x7FFFFFFFFFFFFFFF", DOC_INT, INT64_MAX, 0},
        {"0o777777777777777777777", DOC_INT, INT64_MAX, 0},
        {"0o8", DOC_STRING, 0, 0},
        {"0o", DOC_STRING, 0, 0},
        {"0x", DOC_STRING, 0, 0},
        {"0xg", DOC_STRING, 0, 0},
        {"-0x1F", DOC_STRING, 0, 0},
        {"+0o7", DOC_STRING, 0, 0},
        {"1_000", DOC_STRING, 0, 0},
        {"0b101", DOC_STRING, 0, 0},
        {"12:30", DOC_STRING, 0, 0},
        {"1.2.3", DOC_STRING, 0, 0},
        {"e5", DOC_STRING, 0, 0},
        {"1e", DOC_STRING, 0, 0},
        {".5e", DOC_STRING, 0, 0},
        {".", DOC_STRING, 0, 0},
        {"+", DOC_STRING, 0, 0},
        {"Infinity", DOC_STRING, 0, 0},
        {"inf", DOC_STRING, 0, 0},
        {"nan", DOC_STRING, 0, 0},
        {"-.nan", DOC_STRING, 0, 0},
        {"1.5", DOC_FLOAT, 0, 1.5},
        {"-1.5", DOC_FLOAT, 0, -1.5},
        {".5", DOC_FLOAT, 0, 0.5},
        {"-.5", DOC_FLOAT, 0, -0.5},
        {"1.", DOC_FLOAT, 0, 1.0},
        {"1e3", DOC_FLOAT, 0, 1000.0},
        {"1E-3", DOC_FLOAT, 0, 0.001},
        {"+1.5e+3", DOC_FLOAT, 0, 1500.0},
        {".inf", DOC_FLOAT, 0, INFINITY},
        {"-.Inf", DOC_FLOAT, 0, -INFINITY},
        {"+.INF", DOC_FLOAT, 0, INFINITY},
        {".nan", DOC_FLOAT, 0, NAN},
        {".NaN", DOC_FLOAT, 0, NAN},
        {".NAN", DOC_FLOAT, 0, NAN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct resolve_case *c = &cases[i];
        char text[128];
        snprintf(text, sizeof(text), "v: %s\n", c->text);
        struct doc_file *f = yaml_ok(text);
        const struct doc_node *v = get(root(f), "v");
        if (v->kind != c->kind)
            print_error("'%s' resolved to %s, expected %s\n", c->text, doc_kind_name(v->kind),
                        doc_kind_name(c->kind));
        assert_int_equal(v->kind, c->kind);
        switch (c->kind) {
        case DOC_BOOL:
            assert_int_equal(v->u.b, c->i == 1);
            break;
        case DOC_INT:
            assert_true(v->u.i == c->i);
            break;
        case DOC_FLOAT:
            if (isnan(c->f))
                assert_true(isnan(v->u.f));
            else
                assert_true(v->u.f == c->f);
            break;
        case DOC_STRING:
            expect_str(v, c->text);
            break;
        default:
            break;
        }
        doc_file_free(f);
    }

    /* Quoted and block scalars are always strings. */
    struct doc_file *f = yaml_ok("a: '15'\nb: \"true\"\nc: |\n  15\nd: >-\n  null\ne: ''\n");
    expect_str(get(root(f), "a"), "15");
    expect_str(get(root(f), "b"), "true");
    expect_str(get(root(f), "c"), "15\n");
    expect_str(get(root(f), "d"), "null");
    expect_str(get(root(f), "e"), "");
    doc_file_free(f);
}

static void test_number_out_of_range(void **state)
{
    (void)state;
    yaml_error("v: 9223372036854775808\n", RV_EPARSE,
               "t.yaml:1:4: error: integer '9223372036854775808' does not fit in 64 bits; quote "
               "it if it is meant as a string");
    yaml_error("a: 1\nv: -9223372036854775809\n", RV_EPARSE,
               "t.yaml:2:4: error: integer '-9223372036854775809' does not fit in 64 bits; quote "
               "it if it is meant as a string");
    yaml_error("v: [0x8000000000000000]\n", RV_EPARSE,
               "t.yaml:1:5: error: integer '0x8000000000000000' does not fit in 64 bits; quote "
               "it if it is meant as a string");
    yaml_error("v: 0o1000000000000000000000\n", RV_EPARSE,
               "t.yaml:1:4: error: integer '0o1000000000000000000000' does not fit in 64 bits; "
               "quote it if it is meant as a string");
    yaml_error("v: 1e999\n", RV_EPARSE,
               "t.yaml:1:4: error: number '1e999' is out of range for a 64-bit float; quote it "
               "if it is meant as a string");
    /* Quoted, it is just a string; as a key, just text. */
    struct doc_file *f = yaml_ok("v: \"99999999999999999999\"\n99999999999999999999: x\n");
    expect_str(get(root(f), "v"), "99999999999999999999");
    expect_str(get(root(f), "99999999999999999999"), "x");
    doc_file_free(f);
}

/* ------------------------------------------------------------ tags */

/* Numbers keep their text as written, for messages: YAML reads 10.10 as
 * 10.1, and a message should still show 10.10. */
static void test_number_text(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: 10.10\nb: 0x1F\nc: 1e3\nd: \"10.10\"\ne: &n +007\n"
                                 "f: *n\ng: !!float 3\nh: true\n");
    const struct doc_node *r = root(f);
    assert_int_equal(get(r, "a")->kind, DOC_FLOAT);
    assert_string_equal(get(r, "a")->text, "10.10");
    expect_int(get(r, "b"), 31);
    assert_string_equal(get(r, "b")->text, "0x1F");
    assert_string_equal(get(r, "c")->text, "1e3");
    assert_null(get(r, "d")->text); /* a string is its own text */
    expect_int(get(r, "e"), 7);
    assert_string_equal(get(r, "e")->text, "+007");
    assert_string_equal(get(r, "f")->text, "+007"); /* an alias copies it */
    assert_int_equal(get(r, "g")->kind, DOC_FLOAT);
    assert_string_equal(get(r, "g")->text, "3");
    assert_null(get(r, "h")->text);
    doc_file_free(f);

    f = parse_ok(DOC_FORMAT_JSON, "{\"a\": 10.10, \"b\": -0, \"c\": [1E3, 2.50e-1], \"d\": null}");
    r = root(f);
    assert_string_equal(get(r, "a")->text, "10.10");
    assert_string_equal(get(r, "b")->text, "-0");
    assert_string_equal(at(get(r, "c"), 0)->text, "1E3");
    assert_string_equal(at(get(r, "c"), 1)->text, "2.50e-1");
    assert_null(get(r, "d")->text);
    doc_file_free(f);
}

static void test_tags(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: !!str 15\n"
                                 "b: !!int \"42\"\n"
                                 "c: !!float 1\n"
                                 "d: !!bool true\n"
                                 "e: !!null ''\n"
                                 "f: !!map {x: 1}\n"
                                 "g: !!seq [1]\n"
                                 "h: ! 5\n"
                                 "i: !!float .inf\n"
                                 "j: !!str\n"
                                 "k: !!int 0x10\n"
                                 "l: !!float 99999999999999999999\n");
    const struct doc_node *r = root(f);
    expect_str(get(r, "a"), "15");
    expect_int(get(r, "b"), 42);
    assert_int_equal(get(r, "c")->kind, DOC_FLOAT);
    assert_true(get(r, "c")->u.f == 1.0);
    assert_int_equal(get(r, "d")->kind, DOC_BOOL);
    assert_true(get(r, "d")->u.b);
    assert_int_equal(get(r, "e")->kind, DOC_NULL);
    assert_int_equal(get(r, "f")->kind, DOC_MAP);
    assert_int_equal(get(r, "g")->kind, DOC_SEQ);
    expect_str(get(r, "h"), "5");
    assert_true(isinf(get(r, "i")->u.f));
    expect_str(get(r, "j"), "");
    expect_int(get(r, "k"), 16);
    assert_int_equal(get(r, "l")->kind, DOC_FLOAT);
    assert_true(get(r, "l")->u.f == 1e20);
    doc_file_free(f);

    const char *allowed =
        "remove it (only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are allowed)";
    char want[512];
    snprintf(want, sizeof(want),
             "t.yaml:2:7: error: unsupported tag '!!python/object:os.system'; %s", allowed);
    yaml_error("a: 1\nhook: !!python/object:os.system [rm]\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:1:4: error: unsupported tag '!custom'; %s", allowed);
    yaml_error("v: !custom 1\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:1:4: error: unsupported tag '!!binary'; %s", allowed);
    yaml_error("v: !!binary aGk=\n", RV_EPARSE, want);
    snprintf(want, sizeof(want),
             "t.yaml:3:4: error: unsupported tag 'tag:example.com,2000:foo'; %s", allowed);
    yaml_error("%TAG !e! tag:example.com,2000:\n---\nv: !e!foo x\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:1:1: error: unsupported tag '!custom'; %s", allowed);
    yaml_error("!custom k: v\n", RV_EPARSE, want);

    yaml_error("v: !!int abc\n", RV_EPARSE,
               "t.yaml:1:4: error: 'abc' is not a valid !!int; fix the value or remove the tag");
    yaml_error("v: !!int 1.5\n", RV_EPARSE,
               "t.yaml:1:4: error: '1.5' is not a valid !!int; fix the value or remove the tag");
    yaml_error("v: !!bool yes\n", RV_EPARSE,
               "t.yaml:1:4: error: 'yes' is not a valid !!bool; fix the value or remove the tag");
    yaml_error("v: !!null x\n", RV_EPARSE,
               "t.yaml:1:4: error: 'x' is not a valid !!null; fix the value or remove the tag");
    yaml_error("v: !!float abc\n", RV_EPARSE,
               "t.yaml:1:4: error: 'abc' is not a valid !!float; fix the value or remove the tag");
    yaml_error("v: !!int 99999999999999999999\n", RV_EPARSE,
               "t.yaml:1:4: error: integer '99999999999999999999' does not fit in 64 bits; quote "
               "it if it is meant as a string");
    yaml_error("v: !!map [1]\n", RV_EPARSE,
               "t.yaml:1:4: error: tag '!!map' cannot be used on a sequence; remove it");
    yaml_error("v: !!str {a: 1}\n", RV_EPARSE,
               "t.yaml:1:4: error: tag '!!str' cannot be used on a mapping; remove it");
    yaml_error("v: !!seq x\n", RV_EPARSE,
               "t.yaml:1:4: error: tag '!!seq' cannot be used on a scalar; remove it");
}

/* ------------------------------------------------------------ anchors */

static void test_anchors_and_aliases(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("base: &base\n"
                                 "  engine: postgresql\n"
                                 "  resources: {cpu: 2}\n"
                                 "copy: *base\n"
                                 "list: [&x 5, *x, *x]\n");
    const struct doc_node *r = root(f);
    const struct doc_node *base = get(r, "base"), *copy = get(r, "copy");
    /* A node starts with its properties (anchor, tag). */
    expect_pos(base, 1, 7);
    /* The copy's root is where the alias is; inside, where the anchor was. */
    assert_int_equal(copy->kind, DOC_MAP);
    expect_pos(copy, 4, 7);
    expect_str(get(copy, "engine"), "postgresql");
    expect_pos(get(copy, "engine"), 2, 11);
    assert_int_equal(get(get(copy, "resources"), "cpu")->u.i, 2);
    /* A copy, not a shared subtree. */
    assert_ptr_not_equal(copy, base);
    assert_ptr_not_equal(get(copy, "resources"), get(base, "resources"));
    const struct doc_node *list = get(r, "list");
    assert_int_equal(list->u.seq.len, 3);
    expect_int(at(list, 0), 5);
    expect_pos(at(list, 0), 5, 8);
    expect_int(at(list, 1), 5);
    expect_pos(at(list, 1), 5, 14);
    expect_int(at(list, 2), 5);
    expect_pos(at(list, 2), 5, 18);
    doc_file_free(f);

    /* The latest definition of an anchor wins; scalars alias into keys. */
    f = yaml_ok("a: &x 1\nb: &x 2\nc: *x\nk: &k name\n*k : v\n");
    expect_int(get(root(f), "c"), 2);
    expect_str(get(root(f), "name"), "v");
    expect_pos(doc_map_get_pair(root(f), "name")->key, 5, 1);
    doc_file_free(f);

    yaml_error(
        "a: *nope\n", RV_EPARSE,
        "t.yaml:1:4: error: unknown anchor 'nope'; define it with '&nope' before this alias");
    /* An anchor is defined once its node is complete: no cycles. */
    yaml_error("a: &a [1, *a]\n", RV_EPARSE,
               "t.yaml:1:11: error: unknown anchor 'a'; define it with '&a' before this alias");
    /* Anchors do not cross documents. */
    yaml_error("a: &x 1\n---\nb: *x\n", RV_EPARSE,
               "t.yaml:3:4: error: unknown anchor 'x'; define it with '&x' before this alias");
}

static void test_keys(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("15: a\nnull: b\ntrue: c\n~: d\n'q': e\n? |\n  block\n: f\n");
    const struct doc_node *r = root(f);
    assert_int_equal(r->u.map.len, 6);
    for (size_t i = 0; i < r->u.map.len; i++)
        assert_int_equal(r->u.map.items[i].key->kind, DOC_STRING);
    expect_str(get(r, "15"), "a");
    expect_str(get(r, "null"), "b");
    expect_str(get(r, "true"), "c");
    expect_str(get(r, "~"), "d");
    expect_str(get(r, "q"), "e");
    expect_str(get(r, "block\n"), "f");
    doc_file_free(f);

    yaml_error("? [a, b]\n: v\n", RV_EPARSE,
               "t.yaml:1:3: error: mapping key must be a scalar, not a sequence; use a plain "
               "string as the key");
    yaml_error("x: {{a: 1}: v}\n", RV_EPARSE,
               "t.yaml:1:5: error: mapping key must be a scalar, not a mapping; use a plain "
               "string as the key");
    yaml_error("m: &m {a: 1}\n? *m\n: v\n", RV_EPARSE,
               "t.yaml:2:3: error: mapping key must be a scalar, but alias '*m' is a mapping; use "
               "a plain string as the key");
}

static void test_merge_keys(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("defaults: &defaults\n"
                                 "  engine: postgresql\n"
                                 "  instances: 1\n"
                                 "  region: local-1\n"
                                 "extra: &extra\n"
                                 "  region: eu-1\n"
                                 "  backup: true\n"
                                 "a:\n"
                                 "  instances: 3\n"
                                 "  <<: *defaults\n"
                                 "b:\n"
                                 "  <<: [*extra, *defaults]\n"
                                 "  engine: mariadb\n"
                                 "c: {<<: {x: 1}, y: 2}\n"
                                 "d: {'<<': 5}\n");
    const struct doc_node *r = root(f);
    /* Explicit keys win, wherever they stand; merged keys go where '<<' was. */
    const struct doc_node *a = get(r, "a");
    assert_int_equal(a->u.map.len, 3);
    expect_str(a->u.map.items[0].key, "instances");
    expect_int(a->u.map.items[0].value, 3);
    expect_str(a->u.map.items[1].key, "engine");
    expect_str(a->u.map.items[2].key, "region");
    expect_str(get(a, "engine"), "postgresql");
    expect_pos(get(a, "engine"), 2, 11);
    assert_null(doc_map_get(a, "<<"));
    /* Among merged mappings the earlier wins. */
    const struct doc_node *b = get(r, "b");
    assert_int_equal(b->u.map.len, 4);
    expect_str(b->u.map.items[0].key, "region");
    expect_str(b->u.map.items[1].key, "backup");
    expect_str(b->u.map.items[2].key, "instances");
    expect_str(b->u.map.items[3].key, "engine");
    expect_str(get(b, "region"), "eu-1");
    expect_str(get(b, "engine"), "mariadb");
    expect_int(get(b, "instances"), 1);
    const struct doc_node *c = get(r, "c");
    assert_int_equal(c->u.map.len, 2);
    expect_int(get(c, "x"), 1);
    /* A quoted '<<' is an ordinary key. */
    expect_int(get(get(r, "d"), "<<"), 5);
    doc_file_free(f);

    yaml_error("a: {<<: 5}\n", RV_EPARSE,
               "t.yaml:1:5: error: merge key '<<' needs a mapping or a list of mappings, not a "
               "value of type 'integer'");
    yaml_error("a: {<<: [{x: 1}, 5]}\n", RV_EPARSE,
               "t.yaml:1:18: error: merge key '<<' needs mappings, but this item is of type "
               "'integer'");
    yaml_error("a:\n  <<: {x: 1}\n  <<: {y: 2}\n", RV_EPARSE,
               "t.yaml:3:3: error: duplicate key '<<' (first defined at line 2)");
}

/* ------------------------------------------------------------ duplicate keys */

static void test_duplicate_keys(void **state)
{
    (void)state;
    yaml_error("spec:\n"
               "  engine: postgresql\n"
               "  instances: 3\n"
               "  version: \"15\"\n"
               "  instances: 4\n",
               RV_EPARSE, "t.yaml:5:3: error: duplicate key 'instances' (first defined at line 3)");
    yaml_error("{a: 1, b: 2, a: 3}\n", RV_EPARSE,
               "t.yaml:1:14: error: duplicate key 'a' (first defined at line 1)");
    /* The same text in another style is the same key. */
    yaml_error("\"a\": 1\na: 2\n", RV_EPARSE,
               "t.yaml:2:1: error: duplicate key 'a' (first defined at line 1)");
    /* Control characters in a key are shown escaped. */
    yaml_error("\"a\\nb\": 1\n\"a\\nb\": 2\n", RV_EPARSE,
               "t.yaml:2:1: error: duplicate key 'a\\nb' (first defined at line 1)");

    /* A big mapping (hash index) finds the duplicate as well. */
    struct buf b = BUF_INIT;
    for (int i = 0; i < 300; i++)
        assert_int_equal(buf_printf(&b, "k%d: %d\n", i, i), 0);
    assert_int_equal(buf_puts(&b, "k77: again\n"), 0);
    yaml_error(b.data, RV_EPARSE,
               "t.yaml:301:1: error: duplicate key 'k77' (first defined at line 78)");
    buf_release(&b);

    /* JSON says where the key was first defined too: in the object that
     * holds the duplicate, not in an enclosing or earlier one, and with
     * escapes decoded ("\u0063" is "c"). */
    json_error("{\"a\": 1,\n \"b\": {\"c\": 1, \"c\": 2}}", RV_EPARSE,
               "t.json:2:16: error: duplicate key 'c' (first defined at line 2)");
    json_error("{\"c\": 1,\n \"x\": [{\"c\": 2}, \"c\"],\n \"b\": {\"d\": {\"c\": 3},\n"
               " \"\\u0063\": 4,\n \"c\": 5}}",
               RV_EPARSE, "t.json:5:2: error: duplicate key 'c' (first defined at line 4)");
}

/* ------------------------------------------------------------ limits */

static void test_limit_depth(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    put_repeat(&b, "[", RV_DOC_DEPTH_MAX);
    put_repeat(&b, "]", RV_DOC_DEPTH_MAX);
    doc_file_free(yaml_ok(b.data));
    doc_file_free(parse_ok(DOC_FORMAT_JSON, b.data));
    buf_clear(&b);

    put_repeat(&b, "[", RV_DOC_DEPTH_MAX + 1);
    put_repeat(&b, "]", RV_DOC_DEPTH_MAX + 1);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:1:65: error: nesting deeper than 64 levels; flatten the document");
    json_error(b.data, RV_ELIMIT,
               "t.json:1:65: error: nesting deeper than 64 levels; flatten the document");
    buf_clear(&b);

    /* Deeper than jansson's own limit: still our message and position. */
    put_repeat(&b, "[", 5000);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:1:65: error: nesting deeper than 64 levels; flatten the document");
    json_error(b.data, RV_ELIMIT,
               "t.json:1:65: error: nesting deeper than 64 levels; flatten the document");
    buf_clear(&b);

    /* Block style: one mapping per line. */
    for (int i = 0; i <= RV_DOC_DEPTH_MAX; i++) {
        put_repeat(&b, " ", (size_t)i);
        assert_int_equal(buf_printf(&b, "k%d:\n", i), 0);
    }
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:65:65: error: nesting deeper than 64 levels; flatten the document");
    buf_clear(&b);

    /* Through an alias: the anchor is 40 deep, used 30 deep. */
    assert_int_equal(buf_puts(&b, "a: &d "), 0);
    put_repeat(&b, "[", 40);
    put_repeat(&b, "]", 40);
    assert_int_equal(buf_puts(&b, "\nb: "), 0);
    put_repeat(&b, "[", 29);
    assert_int_equal(buf_puts(&b, "*d"), 0);
    put_repeat(&b, "]", 29);
    assert_int_equal(buf_puts(&b, "\n"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:2:33: error: alias '*d' nests the document deeper than 64 levels; flatten "
               "the document");
    buf_release(&b);
}

static void test_limit_nodes(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    /* The sequence and 99999 scalars: exactly the limit. */
    assert_int_equal(buf_puts(&b, "[0"), 0);
    put_repeat(&b, ",0", RV_DOC_NODES_MAX - 2);
    assert_int_equal(buf_puts(&b, "]"), 0);
    doc_file_free(yaml_ok(b.data));
    doc_file_free(parse_ok(DOC_FORMAT_JSON, b.data));
    buf_clear(&b);

    /* One more: the 100001st node is scalar number 100000, at column
     * 2 + 2 * 99999. */
    assert_int_equal(buf_puts(&b, "[0"), 0);
    put_repeat(&b, ",0", RV_DOC_NODES_MAX - 1);
    assert_int_equal(buf_puts(&b, "]"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:1:200000: error: too many nodes: more than 100000 in one file; split it "
               "into smaller files");
    json_error(b.data, RV_ELIMIT,
               "t.json:1:200000: error: too many nodes: more than 100000 in one file; split it "
               "into smaller files");
    buf_release(&b);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    /* Nine levels of nine aliases each would be 9^9 (387 million) strings.
     * Level e already holds 66430 nodes; the first '*e' would pass the
     * limit, and must be refused before anything is copied. */
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"), 0);
    for (char c = 'b'; c <= 'i'; c++) {
        assert_int_equal(buf_printf(&b, "%c: &%c [", c, c), 0);
        for (int i = 0; i < 9; i++)
            assert_int_equal(buf_printf(&b, "%s*%c", i ? ", " : "", c - 1), 0);
        assert_int_equal(buf_puts(&b, "]\n"), 0);
    }
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:6:8: error: too many nodes: alias '*e' expands to 66430 more, past the "
               "limit of 100000 in one file; use fewer or smaller aliases");
    buf_release(&b);

    /* The same with mappings and merge keys. */
    b = (struct buf)BUF_INIT;
    assert_int_equal(buf_puts(&b, "a: &a {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, "
                                  "k6: lol, k7: lol, k8: lol, k9: lol}\n"),
                     0);
    for (char c = 'b'; c <= 'i'; c++) {
        assert_int_equal(buf_printf(&b, "%c: &%c {", c, c), 0);
        for (int i = 0; i < 10; i++)
            assert_int_equal(buf_printf(&b, "%sk%d: *%c", i ? ", " : "", i, c - 1), 0);
        assert_int_equal(buf_puts(&b, "}\n"), 0);
    }
    struct diag_list d;
    struct doc_file *f = NULL;
    diag_list_init(&d);
    assert_int_equal(doc_parse(&f, DOC_FORMAT_YAML, "t.yaml", b.data, b.len, &d), RV_ELIMIT);
    assert_null(f);
    char *got = first_diag(&d);
    assert_non_null(strstr(got, "error: too many nodes: alias '*"));
    assert_non_null(strstr(got, "past the limit of 100000 in one file"));
    free(got);
    diag_list_release(&d);
    buf_release(&b);
}

static void test_limit_aliases(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "a: &a 1\nb: ["), 0);
    put_repeat(&b, "*a, ", RV_DOC_ALIASES_MAX);
    assert_int_equal(buf_puts(&b, "1]\n"), 0);
    doc_file_free(yaml_ok(b.data));
    buf_clear(&b);

    assert_int_equal(buf_puts(&b, "a: &a 1\nb: ["), 0);
    put_repeat(&b, "*a, ", RV_DOC_ALIASES_MAX + 1);
    assert_int_equal(buf_puts(&b, "1]\n"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:2:4005: error: too many aliases: more than 1000 in one file; use fewer "
               "'*' references");
    buf_release(&b);
}

static void test_limit_anchors(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    size_t col = 0;
    assert_int_equal(buf_puts(&b, "["), 0);
    for (int i = 0; i <= RV_DOC_ANCHORS_MAX; i++) {
        col = b.len + 1;
        assert_int_equal(buf_printf(&b, "&a%d %d, ", i, i), 0);
    }
    assert_int_equal(buf_puts(&b, "*a0]\n"), 0);
    char want[256];
    snprintf(want, sizeof(want),
             "t.yaml:1:%zu: error: too many anchors: more than 1000 in one file; use fewer '&' "
             "anchors",
             col);
    yaml_error(b.data, RV_ELIMIT, want);
    buf_release(&b);
}

static void test_limit_scalar(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_int_equal(buf_puts(&b, "v: "), 0);
    put_repeat(&b, "x", RV_DOC_SCALAR_MAX);
    doc_file_free(yaml_ok(b.data));
    assert_int_equal(buf_puts(&b, "x"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:1:4: error: value is 65537 bytes, past the limit of 65536 bytes for one "
               "value; shorten it");
    buf_clear(&b);

    assert_int_equal(buf_puts(&b, "{\"a\": 1,\n \"v\": \""), 0);
    put_repeat(&b, "x", RV_DOC_SCALAR_MAX + 1);
    assert_int_equal(buf_puts(&b, "\"}"), 0);
    json_error(b.data, RV_ELIMIT,
               "t.json:2:7: error: value is 65537 bytes, past the limit of 65536 bytes for one "
               "value; shorten it");
    buf_release(&b);
}

static void test_limit_map_keys(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (int i = 0; i < RV_DOC_MAP_KEYS_MAX; i++)
        assert_int_equal(buf_printf(&b, "k%d: 0\n", i), 0);
    doc_file_free(yaml_ok(b.data));
    assert_int_equal(buf_puts(&b, "one_more: 0\n"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:4097:1: error: more than 4096 keys in one mapping; split it");
    buf_clear(&b);

    /* Merged keys count too. */
    assert_int_equal(buf_puts(&b, "base: &b {x: 1, y: 2}\nm:\n"), 0);
    for (int i = 0; i < RV_DOC_MAP_KEYS_MAX - 1; i++)
        assert_int_equal(buf_printf(&b, "  k%d: 0\n", i), 0);
    assert_int_equal(buf_puts(&b, "  <<: *b\n"), 0);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:4098:3: error: more than 4096 keys in one mapping after merging '<<'; "
               "split it");
    buf_clear(&b);

    assert_int_equal(buf_puts(&b, "{"), 0);
    for (int i = 0; i <= RV_DOC_MAP_KEYS_MAX; i++)
        assert_int_equal(buf_printf(&b, "%s\n\"k%d\": 0", i ? "," : "", i), 0);
    assert_int_equal(buf_puts(&b, "}"), 0);
    json_error(b.data, RV_ELIMIT,
               "t.json:4098:1: error: more than 4096 keys in one mapping; split it");
    buf_release(&b);
}

static void test_limit_docs(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    put_repeat(&b, "---\na: 1\n", RV_DOC_DOCS_MAX);
    struct doc_file *f = yaml_ok(b.data);
    assert_int_equal(f->ndocs, RV_DOC_DOCS_MAX);
    doc_file_free(f);
    put_repeat(&b, "---\na: 1\n", 1);
    yaml_error(b.data, RV_ELIMIT,
               "t.yaml:2001:1: error: more than 1000 documents in one file; split it into "
               "several files");
    buf_release(&b);
}

static void test_limit_file_size(void **state)
{
    (void)state;
    char *big = malloc(RV_SPEC_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, ' ', RV_SPEC_FILE_MAX + 1);
    big[0] = '#';
    /* Exactly the limit: a comment, so no documents. */
    struct diag_list d;
    struct doc_file *f = NULL;
    diag_list_init(&d);
    assert_int_equal(doc_parse(&f, DOC_FORMAT_YAML, "t.yaml", big, RV_SPEC_FILE_MAX, &d), 0);
    assert_int_equal(f->ndocs, 0);
    doc_file_free(f);
    diag_list_release(&d);
    expect_error_n(DOC_FORMAT_YAML, big, RV_SPEC_FILE_MAX + 1, RV_ELIMIT,
                   "t.yaml: error: file is 1048577 bytes, past the limit of 1048576 bytes; split "
                   "it into smaller files");
    free(big);
}

/* ------------------------------------------------------------ hostile text */

static void test_invalid_utf8(void **state)
{
    (void)state;
    yaml_error("a: 1\nname: caf\xe9\n", RV_EPARSE,
               "t.yaml:2:10: error: invalid UTF-8 byte 0xe9; save the file as UTF-8");
    yaml_error("a: \xc3\xa9\xff\n", RV_EPARSE,
               "t.yaml:1:5: error: invalid UTF-8 byte 0xff; save the file as UTF-8");
    /* Overlong, surrogate, past U+10FFFF, cut short at the end. */
    yaml_error("\xc0\xaf: x\n", RV_EPARSE,
               "t.yaml:1:1: error: invalid UTF-8 byte 0xc0; save the file as UTF-8");
    yaml_error("a: \xed\xa0\x80\n", RV_EPARSE,
               "t.yaml:1:4: error: invalid UTF-8 byte 0xed; save the file as UTF-8");
    yaml_error("a: \xf4\x90\x80\x80\n", RV_EPARSE,
               "t.yaml:1:4: error: invalid UTF-8 byte 0xf4; save the file as UTF-8");
    yaml_error("a: \xe2\x82", RV_EPARSE,
               "t.yaml:1:4: error: invalid UTF-8 byte 0xe2; save the file as UTF-8");
    json_error("{\"a\":\n \"\xff\"}", RV_EPARSE,
               "t.json:2:3: error: invalid UTF-8 byte 0xff; save the file as UTF-8");
    yaml_error("\xff\xfe"
               "a\0:\0",
               RV_EPARSE, "t.yaml:1:1: error: file is encoded as UTF-16; save it as UTF-8");
}

static void test_nul_and_control(void **state)
{
    (void)state;
    expect_error_n(DOC_FORMAT_YAML, "a: 1\nb: x\0y\n", 11, RV_EPARSE,
                   "t.yaml:2:5: error: NUL byte in file; spec files must be UTF-8 text (is this a "
                   "binary file?)");
    expect_error_n(DOC_FORMAT_JSON, "{\"a\": \0}", 8, RV_EPARSE,
                   "t.json:1:7: error: NUL byte in file; spec files must be UTF-8 text (is this a "
                   "binary file?)");
    yaml_error("a: \x07\n", RV_EPARSE,
               "t.yaml:1:4: error: control character U+0007 is not allowed; remove it or write it "
               "as an escape in a double-quoted string");
    yaml_error("a: x\xc2\x80\n", RV_EPARSE,
               "t.yaml:1:5: error: control character U+0080 is not allowed; remove it or write it "
               "as an escape in a double-quoted string");
    /* Escaped, a control character is fine; a NUL is not, even escaped. */
    struct doc_file *f = yaml_ok("a: \"\\a\"\n");
    expect_str(get(root(f), "a"), "\a");
    doc_file_free(f);
    yaml_error("a: 1\nb: \"x\\0y\"\n", RV_EPARSE,
               "t.yaml:2:4: error: NUL character (\\0) in a value is not allowed; remove it");
    yaml_error("\"k\\0\": 1\n", RV_EPARSE,
               "t.yaml:1:1: error: NUL character (\\0) in a value is not allowed; remove it");
    json_error("{\"a\": \"x\\u0000y\"}", RV_EPARSE,
               "t.json:1:7: error: NUL character (\\u0000) in a string is not allowed; remove it");
}

static void test_tabs(void **state)
{
    (void)state;
    const char *tab = "error: tab character in indentation; YAML allows only spaces";
    char want[256];
    snprintf(want, sizeof(want), "t.yaml:2:1: %s", tab);
    yaml_error("spec:\n\tinstances: 3\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:3:2: %s", tab);
    yaml_error("spec:\n  a: 1\n \tb: 2\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:2:1: %s", tab);
    yaml_error("a: foo\n\tbar\n", RV_EPARSE, want);
    snprintf(want, sizeof(want), "t.yaml:2:3: %s", tab);
    yaml_error("l:\n- \tx\n", RV_EPARSE, want);
    /* Tabs that are not indentation are fine. */
    struct doc_file *f = yaml_ok("a: x\ty\nb:\tvalue\nc: [1,\n\t2]\nd: \"p\n\tq\"\n");
    expect_str(get(root(f), "a"), "x\ty");
    expect_str(get(root(f), "b"), "value");
    expect_int(at(get(root(f), "c"), 1), 2);
    expect_str(get(root(f), "d"), "p q");
    doc_file_free(f);
}

static void test_yaml_syntax_errors(void **state)
{
    (void)state;
    yaml_error("a: [1, 2\n", RV_EPARSE,
               "t.yaml:2:1: error: did not find expected ',' or ']' (while parsing a flow "
               "sequence at line 1, column 4); close the '[' or add the missing ','");
    yaml_error("a: b: c\n", RV_EPARSE,
               "t.yaml:1:5: error: mapping values are not allowed in this context; quote the "
               "value if it contains ': ', or check the indentation");
    yaml_error("a:\n  - x\n  y: 1\n", RV_EPARSE,
               "t.yaml:3:3: error: did not find expected '-' indicator (while parsing a block "
               "collection at line 2, column 3); check the indentation of this line");
    yaml_error("spec:\n  a: 1\n b: 2\n", RV_EPARSE,
               "t.yaml:3:2: error: did not find expected key (while parsing a block mapping at "
               "line 1, column 1); check the indentation of this line");
    yaml_error("a: 'x\n", RV_EPARSE,
               "t.yaml:2:1: error: found unexpected end of stream (while scanning a quoted scalar "
               "at line 1, column 4); close the quote or bracket");
    yaml_error("a: @x\n", RV_EPARSE,
               "t.yaml:1:4: error: found character that cannot start any token (while scanning "
               "for the next token at line 1, column 4); quote the value");
}

static void test_json_errors(void **state)
{
    (void)state;
    json_error("{\n  \"a\": [1,\n 2,,]}", RV_EPARSE,
               "t.json:3:4: error: unexpected token near ','");
    json_error("{\"a\": 1", RV_EPARSE, "t.json:1:8: error: '}' expected near end of file");
    json_error("[1] x", RV_EPARSE, "t.json:1:5: error: end of file expected near 'x'");
    json_error("{\"a\": 99999999999999999999}", RV_EPARSE,
               "t.json:1:7: error: too big integer near '99999999999999999999'");
    json_error("", RV_EPARSE, "t.json:1:1: error: unexpected token near end of file");
    json_error("{\"a\": tru}", RV_EPARSE, "t.json:1:7: error: invalid token near 'tru'");

    /* A value where '}' or ']' was expected: a missing ','. On another line
     * than the value before it, the error is at the end of that value,
     * where the ',' goes. */
    json_error("{\n  \"a\": \"x\"\n  \"b\": 1\n}", RV_EPARSE,
               "t.json:2:11: error: '}' expected near '\"b\"' (line 3); is a ',' missing at the "
               "end of this line?");
    json_error("{\"a\": 1 \"b\": 2}", RV_EPARSE,
               "t.json:1:9: error: '}' expected near '\"b\"'; is a ',' missing before it?");
    json_error("[1,\n 2\t \n 3]", RV_EPARSE,
               "t.json:2:3: error: ']' expected near '3' (line 3); is a ',' missing at the end of "
               "this line?");
    json_error("{\"a\": [1] {}}", RV_EPARSE,
               "t.json:1:11: error: '}' expected near '{'; is a ',' missing before it?");
    /* Other tokens there are not a missing ',' */
    json_error("{\"a\": 1 :}", RV_EPARSE, "t.json:1:9: error: '}' expected near ':'");
}

/* ------------------------------------------------------------ documents */

static void test_multi_document(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: 1\n---\nb: 2\n--- # third\n- x\n...\n");
    assert_int_equal(f->ndocs, 3);
    expect_int(get(f->docs[0], "a"), 1);
    expect_pos(f->docs[1], 3, 1);
    expect_int(get(f->docs[1], "b"), 2);
    assert_int_equal(f->docs[2]->kind, DOC_SEQ);
    expect_pos(f->docs[2], 5, 1);
    doc_file_free(f);

    f = yaml_ok("# only comments\n\n# more\n");
    assert_int_equal(f->ndocs, 0);
    doc_file_free(f);
    f = yaml_ok("");
    assert_int_equal(f->ndocs, 0);
    doc_file_free(f);
    f = yaml_ok("\xef\xbb\xbf");
    assert_int_equal(f->ndocs, 0);
    doc_file_free(f);
    f = yaml_ok("---\n");
    assert_int_equal(f->ndocs, 1);
    assert_int_equal(f->docs[0]->kind, DOC_NULL);
    doc_file_free(f);
    f = yaml_ok("just a string\n");
    expect_str(root(f), "just a string");
    doc_file_free(f);
    doc_file_free(NULL);
}

/* ------------------------------------------------------------ JSON */

static void test_json_positions(void **state)
{
    (void)state;
    const char *text = "{\n"
                       "  \"apiVersion\": \"reeve/v1\",\n"
                       "  \"spec\": {\n"
                       "    \"instances\": 3,\n"
                       "    \"ratio\": 0.5,\n"
                       "    \"tags\": [\"\xc3\xa9t\xc3\xa9\", \"b\", true, null, -1e3],\n"
                       "    \"nested\": {\"k\": [1, {\"x\": false}]}\n"
                       "  },\n"
                       "  \"esc\": \"a\\\"b\\u00e9\"\n"
                       "}\n";
    struct doc_file *f = parse_ok(DOC_FORMAT_JSON, text);
    const struct doc_node *r = root(f);
    expect_pos(r, 1, 1);
    assert_int_equal(r->u.map.len, 3);
    expect_str(r->u.map.items[0].key, "apiVersion");
    expect_pos(r->u.map.items[0].key, 2, 3);
    expect_pos(r->u.map.items[0].value, 2, 17);
    const struct doc_node *spec = get(r, "spec");
    expect_pos(doc_map_get_pair(r, "spec")->key, 3, 3);
    expect_pos(spec, 3, 11);
    expect_int(get(spec, "instances"), 3);
    expect_pos(get(spec, "instances"), 4, 18);
    assert_int_equal(get(spec, "ratio")->kind, DOC_FLOAT);
    assert_true(get(spec, "ratio")->u.f == 0.5);
    expect_pos(get(spec, "ratio"), 5, 14);
    const struct doc_node *tags = get(spec, "tags");
    expect_pos(tags, 6, 13);
    expect_pos(at(tags, 0), 6, 14);
    expect_pos(at(tags, 1), 6, 21);
    assert_int_equal(at(tags, 2)->kind, DOC_BOOL);
    expect_pos(at(tags, 2), 6, 26);
    assert_int_equal(at(tags, 3)->kind, DOC_NULL);
    expect_pos(at(tags, 3), 6, 32);
    assert_int_equal(at(tags, 4)->kind, DOC_FLOAT);
    expect_pos(at(tags, 4), 6, 38);
    const struct doc_node *k = get(get(spec, "nested"), "k");
    const struct doc_node *x = get(at(k, 1), "x");
    assert_int_equal(x->kind, DOC_BOOL);
    assert_false(x->u.b);
    expect_pos(at(k, 1), 7, 25);
    expect_pos(x, 7, 31);
    expect_str(get(r, "esc"), "a\"b\xc3\xa9");
    expect_pos(get(r, "esc"), 9, 10);
    doc_file_free(f);

    /* Any JSON value may be the document. */
    f = parse_ok(DOC_FORMAT_JSON, "  \"s\"  ");
    expect_str(root(f), "s");
    expect_pos(root(f), 1, 3);
    doc_file_free(f);
}

/* ------------------------------------------------------------ API */

static void test_to_json(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: 1\nb: [true, null, x, 1.5]\nc: {d: \"15\"}\ne: .inf\n"
                                 "f: -.inf\ng: .nan\nh: {}\ni: []\n");
    json_t *j = doc_to_json(root(f));
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"a\":1,\"b\":[true,null,\"x\",1.5],\"c\":{\"d\":\"15\"},"
                           "\"e\":\".inf\",\"f\":\"-.inf\",\"g\":\".nan\",\"h\":{},\"i\":[]}");
    free(s);
    json_decref(j);
    doc_file_free(f);

    /* JSON -> doc -> JSON is the identity. */
    const char *text = "{\"z\": [1, 2.25, \"x\\u00e9y\", {\"q\": null}], \"a\": false, "
                       "\"n\": -9223372036854775808}";
    f = parse_ok(DOC_FORMAT_JSON, text);
    j = doc_to_json(root(f));
    json_t *want = json_loads(text, 0, NULL);
    assert_non_null(want);
    assert_true(json_equal(j, want));
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"z\":[1,2.25,\"x\u00e9y\",{\"q\":null}],\"a\":false,"
                           "\"n\":-9223372036854775808}");
    free(s);
    json_decref(want);
    json_decref(j);
    doc_file_free(f);
    assert_null(doc_to_json(NULL));
}

static void test_map_get_and_kind_names(void **state)
{
    (void)state;
    struct doc_file *f = yaml_ok("a: 1\nb:\n  c: x\n");
    const struct doc_node *r = root(f);
    expect_int(doc_map_get(r, "a"), 1);
    assert_null(doc_map_get(r, "c"));
    assert_null(doc_map_get(r, "A"));
    assert_null(doc_map_get(get(r, "a"), "a"));
    assert_null(doc_map_get(NULL, "a"));
    const struct doc_pair *p = doc_map_get_pair(r, "b");
    assert_non_null(p);
    expect_pos(p->key, 2, 1);
    expect_pos(p->value, 3, 3);
    doc_file_free(f);

    assert_string_equal(doc_kind_name(DOC_NULL), "null");
    assert_string_equal(doc_kind_name(DOC_BOOL), "boolean");
    assert_string_equal(doc_kind_name(DOC_INT), "integer");
    assert_string_equal(doc_kind_name(DOC_FLOAT), "number");
    assert_string_equal(doc_kind_name(DOC_STRING), "string");
    assert_string_equal(doc_kind_name(DOC_MAP), "object");
    assert_string_equal(doc_kind_name(DOC_SEQ), "array");
}

/* ------------------------------------------------------------ doc_load */

static void write_file(const char *path, const char *data)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(data, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void load_error(const char *fs_path, const char *shown, int want_rc, const char *want)
{
    struct diag_list d;
    struct doc_file *f = (struct doc_file *)1;
    diag_list_init(&d);
    assert_int_equal(doc_load(&f, fs_path, shown, &d), want_rc);
    assert_null(f);
    char *got = first_diag(&d);
    assert_string_equal(got, want);
    free(got);
    diag_list_release(&d);
}

static void test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/reeve-test-doc-XXXXXX";
    char path[512], path2[512], path3[512], path4[512];
    assert_non_null(mkdtemp(dir));
    struct diag_list d;
    struct doc_file *f = NULL;
    diag_list_init(&d);

    snprintf(path, sizeof(path), "%s/billing.yaml", dir);
    write_file(path, "spec:\n  instances: 3\n");
    assert_int_equal(doc_load(&f, path, "clusters/billing.yaml", &d), 0);
    assert_string_equal(f->path, "clusters/billing.yaml");
    expect_int(get(get(root(f), "spec"), "instances"), 3);
    doc_file_free(f);

    /* *.json (and *.tf.json) is JSON: this text is not YAML-only. */
    snprintf(path2, sizeof(path2), "%s/billing.tf.json", dir);
    write_file(path2, "{\"resource\": {\"a\": [1, 2]}}");
    assert_int_equal(doc_load(&f, path2, NULL, &d), 0);
    assert_string_equal(f->path, path2);
    expect_pos(at(get(get(root(f), "resource"), "a"), 1), 1, 24);
    doc_file_free(f);
    assert_int_equal(d.len, 0);
    diag_list_release(&d);

    /* Errors name the display path. */
    write_file(path, "a: 1\na: 2\n");
    load_error(path, "clusters/billing.yaml", RV_EPARSE,
               "clusters/billing.yaml:2:1: error: duplicate key 'a' (first defined at line 1)");
    snprintf(path3, sizeof(path3), "%s/missing.yaml", dir);
    load_error(path3, "clusters/missing.yaml", RV_EIO,
               "error: cannot read 'clusters/missing.yaml': no such file or directory");
    load_error(dir, "clusters", RV_EIO, "error: cannot read 'clusters': not a regular file");
    /* A FIFO is refused at once instead of waiting for a writer. */
    snprintf(path4, sizeof(path4), "%s/fifo.yaml", dir);
    assert_int_equal(mkfifo(path4, 0600), 0);
    load_error(path4, "fifo.yaml", RV_EIO, "error: cannot read 'fifo.yaml': not a regular file");
    unlink(path4);
    /* Too big: refused from its size, before it is read. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)RV_SPEC_FILE_MAX + 1), 0);
    close(fd);
    load_error(path, "big.yaml", RV_ELIMIT,
               "big.yaml: error: file is 1048577 bytes, past the limit of 1048576 bytes; split it "
               "into smaller files");

    unlink(path);
    unlink(path2);
    assert_int_equal(rmdir(dir), 0);
}

/* Every file of the fuzz seed corpus parses or fails with a diagnostic,
 * never silently. */
static void test_fuzz_corpus_outcomes(void **state)
{
    (void)state;
    const char *src = getenv("REEVE_SOURCE_DIR");
    if (src == NULL)
        skip();
    static const struct {
        const char *name;
        int rc;
    } files[] = {
        {"valid-cluster.yaml", 0},      {"billion-laughs.yaml", RV_ELIMIT},
        {"tab-indent.yaml", RV_EPARSE}, {"bad-utf8.yaml", RV_EPARSE},
        {"valid-cluster.json", 0},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/doc/%s", src, files[i].name);
        struct diag_list d;
        struct doc_file *f = NULL;
        diag_list_init(&d);
        /* The corpus files have no .json/.yaml meaning for the fuzzer, but
         * doc_load picks the format from the name. */
        int rc = doc_load(&f, path, files[i].name, &d);
        if (rc != files[i].rc)
            print_error("%s: rc %d, expected %d\n", files[i].name, rc, files[i].rc);
        assert_int_equal(rc, files[i].rc);
        assert_int_equal(d.len, rc == 0 ? 0 : 1);
        doc_file_free(f);
        diag_list_release(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_nested),
        cmocka_unit_test(test_positions_crlf_and_bom),
        cmocka_unit_test(test_core_schema_table),
        cmocka_unit_test(test_number_out_of_range),
        cmocka_unit_test(test_number_text),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_anchors_and_aliases),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_merge_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_nodes),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_limit_aliases),
        cmocka_unit_test(test_limit_anchors),
        cmocka_unit_test(test_limit_scalar),
        cmocka_unit_test(test_limit_map_keys),
        cmocka_unit_test(test_limit_docs),
        cmocka_unit_test(test_limit_file_size),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul_and_control),
        cmocka_unit_test(test_tabs),
        cmocka_unit_test(test_yaml_syntax_errors),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_multi_document),
        cmocka_unit_test(test_json_positions),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_map_get_and_kind_names),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_fuzz_corpus_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
