/* schema.h - validate document trees against reeve's JSON Schemas.
 *
 * The schemas in specs-schema/ (*.schema.json) are embedded in the binary and
 * interpreted here (a JSON Schema 2020-12 subset: type, properties, required,
 * additionalProperties, enum, const, minimum/maximum, minLength/maxLength,
 * pattern, format, items, minItems/maxItems, uniqueItems, $ref/$defs, allOf,
 * oneOf/anyOf, if/then/else, dependentRequired, default). One source of
 * truth: `reeve validate` and any JSON Schema validator agree by
 * construction, and the conformance test proves it with ajv.
 *
 * Also understood: not, propertyNames, min/maxProperties, exclusiveMinimum/
 * exclusiveMaximum, boolean schemas, format "date-time" (RFC 3339, real
 * calendar days), "$comment" next to a "pattern" (the words the message uses
 * for what the pattern expects) and "writeOnly" (the value may be a secret:
 * messages do not quote it unless it starts with a scheme the pattern
 * names). Any other keyword makes schema_parse() fail, so nothing in a
 * schema is silently ignored. specs-schema/README.md lists the messages.
 */
#ifndef REEVE_SCHEMA_H
#define REEVE_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

#include "diag.h"
#include "doc.h"
#include "err.h"

enum schema_id {
    SCHEMA_CLUSTER,    /* cluster.schema.json: a DatabaseCluster document */
    SCHEMA_CLUSTER_TF, /* cluster.tf.schema.json: a *.tf.json file */
    SCHEMA_POLICY,     /* policy.schema.json: a Policy document */
};

struct schema;

/* The embedded schema; loaded once and cached (not thread-safe on first use:
 * call from main before starting threads). NULL only on out-of-memory or a
 * broken embedded schema, which err describes. */
const struct schema *schema_get(enum schema_id id, struct rv_error *err);
/* Load a schema from JSON text (tests use this for small schemas). */
int schema_parse(struct schema **out, const char *json, size_t len, struct rv_error *err);
void schema_free(struct schema *s);

/* Validate n against the schema's root. Each violation becomes an error in
 * diags at the offending node's line:col with its field path (path_prefix
 * joined with the keys below, e.g. "spec.backup.retention.days", array
 * elements as "spec.users[1].name"). Unknown fields get a did-you-mean
 * suggestion when a known field is close. Returns the number of errors added. */
size_t schema_validate(const struct schema *s, const struct doc_node *n, const char *file,
                       const char *path_prefix, struct diag_list *diags);
/* Position and path conventions of those errors: a value's error is at the
 * value; an unknown field's at its key, with the key in the path; a missing
 * field's at the object, with the object's path; a field an if/then requires
 * ("pitr.enabled requires a 'backup' section") at the value that made the
 * "if" true. Keys that are not plain words are quoted in paths:
 * metadata.labels["app.kubernetes.io/name"]. A node gets at most one error.
 * Validation only reads s, so after schema_get() it is safe from any thread. */

/* The "default" the schema declares at a dotted field path below the root
 * (e.g. "spec.instances"), or NULL. Borrowed from the schema. $refs, allOf
 * and additionalProperties are followed; "[]" (or "[3]") steps into array
 * items: "spec.users[].roles". */
const json_t *schema_default(const struct schema *s, const char *field_path);

#endif
