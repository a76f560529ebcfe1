/* fuzz_doc.c - libFuzzer target for lib/doc: every input is parsed as YAML
 * and as JSON; whatever parses is walked, looked up and converted to JSON.
 * Must never crash, hang, leak or trip a sanitizer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct doc_node *n)
{
    (void)doc_kind_name(n->kind);
    if (n->kind == DOC_MAP) {
        for (size_t i = 0; i < n->u.map.len; i++) {
            const struct doc_pair *p = &n->u.map.items[i];
            if (p->key->kind != DOC_STRING)
                abort();
            /* Keys are unique: a look-up finds this very pair (checked on
             * small mappings only, to keep each run fast). */
            if (n->u.map.len <= 64 && doc_map_get_pair(n, p->key->u.str.s) != p)
                abort();
            walk(p->value);
        }
    } else if (n->kind == DOC_SEQ) {
        for (size_t i = 0; i < n->u.seq.len; i++)
            walk(n->u.seq.items[i]);
    }
}

static void one(enum doc_format format, const uint8_t *data, size_t size)
{
    struct diag_list d;
    struct doc_file *f = NULL;
    diag_list_init(&d);
    int rc = doc_parse(&f, format, "fuzz", (const char *)data, size, &d);
    /* Success and failure are exclusive, and a failure always says why. */
    if ((rc == 0) != (f != NULL) || (rc != 0 && d.len == 0) || (rc == 0 && d.len != 0))
        abort();
    for (size_t i = 0; f != NULL && i < f->ndocs; i++) {
        walk(f->docs[i]);
        /* A parsed tree is valid UTF-8 with unique keys: it always converts. */
        json_t *j = doc_to_json(f->docs[i]);
        if (j == NULL)
            abort();
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        free(s);
        json_decref(j);
    }
    doc_file_free(f);
    diag_list_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(DOC_FORMAT_YAML, data, size);
    one(DOC_FORMAT_JSON, data, size);
    return 0;
}
