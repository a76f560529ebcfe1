/* policy.h - Policy documents: conversion of a schema-valid document into a
 * struct spec_policy, and evaluation of a cluster against a policy.
 *
 * spec.c reads files and calls policy_from_doc() for each Policy document;
 * spec_set_check() calls policy_check_cluster() for every cluster and every
 * policy that applies to its namespace.
 */
#ifndef REEVE_POLICY_H
#define REEVE_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "doc.h"
#include "spec.h"

/* Convert a Policy document that passed SCHEMA_POLICY. Semantic problems
 * (instances.min above instances.max) are errors in diags and the policy is
 * still returned. Returns 0 or RV_ENOMEM (*out NULL). */
int policy_from_doc(struct spec_policy **out, const struct doc_node *doc, const char *file,
                    struct diag_list *diags);

/* True when the policy's namespaces list holds namespace_ or "*". */
bool policy_applies(const struct spec_policy *p, const char *namespace_);

/* Add an error for each rule of p that c breaks, at the offending field.
 * Returns the number of errors added. */
size_t policy_check_cluster(const struct spec_policy *p, const struct spec_cluster *c,
                            struct diag_list *diags);

/* Helpers shared by spec.c and policy.c. */
struct spec_pos spec_pos_of(const struct doc_node *n);
/* Position of the key of map[key], or {0,0}. */
struct spec_pos spec_key_pos(const struct doc_node *map, const char *key);
/* NULL-terminated copies of the strings of a sequence (non-strings skipped);
 * *n gets the count. Returns NULL only on out-of-memory (an absent or empty
 * sequence gives an empty array). */
char **spec_strv_from_seq(const struct doc_node *seq, size_t *n);
void spec_strv_free(char **v);

#endif
