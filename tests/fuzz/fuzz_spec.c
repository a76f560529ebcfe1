/* fuzz_spec.c - libFuzzer target for the spec loader: the same bytes are
 * read as a YAML cluster file, as a Terraform JSON file and as a policy
 * file, then the cross-file checks run over everything that converted. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "diag.h"
#include "err.h"
#include "schema.h"
#include "spec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct rv_error err;
    (void)argc;
    (void)argv;
    rv_error_clear(&err);
    if (!schema_get(SCHEMA_CLUSTER, &err) || !schema_get(SCHEMA_CLUSTER_TF, &err) ||
        !schema_get(SCHEMA_POLICY, &err)) {
        fprintf(stderr, "fuzz_spec: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spec_set set;
    struct diag_list diags;
    const char *text = (const char *)data;

    spec_set_init(&set);
    diag_list_init(&diags);
    spec_set_add_buffer(&set, SPEC_FILE_CLUSTERS, "clusters/fuzz.yaml", text, size, &diags);
    spec_set_add_buffer(&set, SPEC_FILE_CLUSTERS, "clusters/fuzz.tf.json", text, size, &diags);
    spec_set_add_buffer(&set, SPEC_FILE_POLICIES, "policies/fuzz.yaml", text, size, &diags);
    spec_set_check(&set, &diags);
    spec_set_sort(&set);
    for (size_t i = 0; i < set.nclusters; i++) {
        json_t *j = spec_cluster_to_json(set.clusters[i]);
        json_decref(j);
    }
    diag_list_sort(&diags);
    spec_set_remove_file(&set, "clusters/fuzz.yaml");
    diag_list_release(&diags);
    spec_set_release(&set);
    return 0;
}
