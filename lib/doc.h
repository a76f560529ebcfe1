/* doc.h - a YAML/JSON document tree in which every node keeps file:line:col.
 *
 * YAML is read with libyaml (multi-document, anchors and aliases expanded
 * within RV_DOC_* limits), scalars resolved with the YAML 1.2 core schema
 * (so `yes` is a string, `15` an integer, `"15"` a string). JSON is read
 * with jansson (duplicate keys rejected) and positions are recovered by a
 * scan of the same text. Input is hostile until proven otherwise: every
 * limit of limits.h is enforced and every failure becomes a diagnostic with
 * file:line:col, never a crash or a hang.
 *
 * A node's position is that of its first character, node properties
 * included: `a: &x {b: 1}` puts the mapping at the '&'. An alias expands to
 * a copy of the anchored subtree whose root carries the alias's position.
 * Strings never contain a NUL byte (a "\0" escape is refused), so str.s is
 * also a usable C string. Whole-file problems (size, unreadable) have line 0.
 */
#ifndef REEVE_DOC_H
#define REEVE_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "diag.h"

enum doc_kind { DOC_NULL, DOC_BOOL, DOC_INT, DOC_FLOAT, DOC_STRING, DOC_MAP, DOC_SEQ };

struct doc_node;

struct doc_pair {
    struct doc_node *key; /* always DOC_STRING */
    struct doc_node *value;
};

struct doc_node {
    enum doc_kind kind;
    unsigned line; /* 1-based position of the node's first character */
    unsigned col;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *s; /* NUL-terminated; len excludes the NUL */
            size_t len;
        } str;
        struct {
            struct doc_pair *items; /* in document order */
            size_t len;
        } map;
        struct {
            struct doc_node **items;
            size_t len;
        } seq;
    } u;
    /* DOC_INT and DOC_FLOAT: the number as written in the file ("10.10",
     * "1e3"), NUL-terminated, so messages can quote it back; NULL in trees
     * built by hand. */
    const char *text;
};

struct doc_file {
    char *path;               /* as given by the caller, used in diagnostics */
    struct doc_node **docs;   /* one per YAML document ("---"); JSON has one */
    size_t ndocs;
    void *arena;              /* owns every node and string */
};

enum doc_format { DOC_FORMAT_YAML, DOC_FORMAT_JSON };

/* Parse data (len bytes, need not be NUL-terminated). On success *out is a
 * new doc_file; on failure returns RV_EPARSE or RV_ELIMIT, *out is NULL and
 * at least one error was added to diags (file:line:col of the problem). */
int doc_parse(struct doc_file **out, enum doc_format format, const char *path,
              const char *data, size_t len, struct diag_list *diags);
/* Read a file (at most RV_SPEC_FILE_MAX bytes) and parse it, choosing the
 * format from the name: *.json is JSON, anything else YAML. display_path is
 * what diagnostics show (usually relative to the repository root). Returns
 * RV_EIO for a file that cannot be read (and adds a diagnostic). */
int doc_load(struct doc_file **out, const char *fs_path, const char *display_path,
             struct diag_list *diags);
void doc_file_free(struct doc_file *f);

/* Look-ups; NULL when the node is not a map or has no such key. */
const struct doc_node *doc_map_get(const struct doc_node *map, const char *key);
const struct doc_pair *doc_map_get_pair(const struct doc_node *map, const char *key);
/* "string", "integer", "number", "boolean", "null", "object", "array" —
 * JSON Schema's words, so messages read the same as the schema. */
const char *doc_kind_name(enum doc_kind kind);
/* Convert to jansson (for --json output and canonical digests). JSON has no
 * infinities or NaN: those floats become the strings ".inf", "-.inf" and
 * ".nan". Returns NULL only when out of memory (or for a hand-built tree that
 * is not valid: a non-string key, invalid UTF-8). */
json_t *doc_to_json(const struct doc_node *n);

#endif
