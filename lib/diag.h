/* diag.h - diagnostics about user input: file:line:col, severity, field path
 * and a message. Printed as
 *   clusters/payments/billing.yaml:12:5: error: spec.instances: must be between 1 and 9 (got 12)
 * and as JSON objects for --json.
 */
#ifndef REEVE_DIAG_H
#define REEVE_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag {
    char *file;  /* as the user named it; "" when there is no file */
    unsigned line; /* 1-based; 0 when unknown (whole-file problems) */
    unsigned col;  /* 1-based; 0 when unknown */
    enum diag_severity severity;
    char *path; /* field path such as "spec.instances"; "" when none */
    char *msg;
};

struct diag_list {
    struct diag *items;
    size_t len;
    size_t cap;
    size_t errors;   /* counted even past RV_DIAG_MAX */
    size_t warnings; /* counted even past RV_DIAG_MAX */
    size_t dropped;  /* not stored because the list was full */
};

void diag_list_init(struct diag_list *l);
void diag_list_release(struct diag_list *l);
/* Returns 0, or RV_ENOMEM (the diagnostic is still counted). */
int diag_add(struct diag_list *l, enum diag_severity sev, const char *file, unsigned line,
             unsigned col, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Sort by file, line, column, then severity and message; stable output. */
void diag_list_sort(struct diag_list *l);
/* "file:line:col: error: path: msg" (parts that are unknown are left out). */
void diag_print(FILE *out, const struct diag *d);
void diag_list_print(FILE *out, const struct diag_list *l);
/* {"file":..,"line":..,"column":..,"severity":..,"path":..,"message":..} */
json_t *diag_to_json(const struct diag *d);

#endif
