/* limits.h - every limit reeve enforces, each with the reason for its value.
 * Input from outside (files, network, child processes) is checked against
 * these and rejected with a clear error; it is never asserted.
 */
#ifndef REEVE_LIMITS_H
#define REEVE_LIMITS_H

/* Error and diagnostic messages: long enough for a path, a field path and a
 * sentence; a longer one is cut, never overflowed. */
#define RV_ERROR_MSG_MAX 512

/* Spec files: the largest real cluster spec is a few KiB; 1 MiB leaves room
 * for generated multi-document files while bounding memory per file. */
#define RV_SPEC_FILE_MAX (1024 * 1024)
/* Nesting depth of a YAML/JSON document: the cluster schema is 6 deep;
 * 64 allows hand-written structure and stops stack-exhausting input. */
#define RV_DOC_DEPTH_MAX 64
/* Nodes in one file, counted after alias expansion: a big multi-document file
 * has a few thousand; this stops "billion laughs" before memory grows. */
#define RV_DOC_NODES_MAX 100000
/* Alias (*ref) uses in one file: anchors are for small shared blocks. */
#define RV_DOC_ALIASES_MAX 1000
/* Documents in one multi-document YAML file. */
#define RV_DOC_DOCS_MAX 1000
/* One scalar (string) value; a sealed secret is well under this. */
#define RV_DOC_SCALAR_MAX (64 * 1024)
/* Keys in one mapping. */
#define RV_DOC_MAP_KEYS_MAX 4096

/* Spec files walked by one `reeve validate` or one reconcile pass. */
#define RV_SPEC_FILES_MAX 100000
/* Diagnostics kept for one run; more are counted, not stored. */
#define RV_DIAG_MAX 10000
/* Path of a file relative to a repository root. */
#define RV_PATH_MAX 4096
/* Directory depth walked below clusters/ and policies/. */
#define RV_WALK_DEPTH_MAX 32

/* Names (Kubernetes-style DNS labels): metadata.name and namespace. */
#define RV_NAME_MAX 63
/* Field paths in messages, e.g. spec.backup.destination.s3.bucket. */
#define RV_FIELD_PATH_MAX 256

_Static_assert(RV_DOC_ALIASES_MAX < RV_DOC_NODES_MAX, "aliases are nodes");
_Static_assert(RV_DOC_SCALAR_MAX < RV_SPEC_FILE_MAX, "a scalar fits in a file");
_Static_assert(RV_FIELD_PATH_MAX < RV_ERROR_MSG_MAX, "a path fits in a message");

#endif
