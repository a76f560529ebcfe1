/* fuzz_s3xml.c - libFuzzer target for the parsers of S3's XML answers in
 * lib/s3 (ListObjectsV2 pages and <Error> answers): input from the network.
 * The first byte picks the store prefix ("" or "p/q"). Must never crash,
 * hang, leak or trip a sanitizer, and every entry it returns must be a
 * NUL-terminated key with a size of at least 0. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "objstore.h"
#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct objstore_entry *e = NULL;
    size_t n = 0, cap = 0;
    char *token = NULL, code[64], msg[192];
    struct rv_error err = {0};
    const char *prefix = size > 0 && (data[0] & 1) ? "p/q" : "";
    const char *xml = size > 1 ? (const char *)data + 1 : NULL;
    size_t len = size > 1 ? size - 1 : 0;

    int rc = s3_list_parse(&e, &n, &cap, prefix, xml, len, &token, &err);
    if (rc != 0 && token != NULL)
        abort();
    if (n > cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if (e[i].key == NULL || e[i].size < 0 || strlen(e[i].key) > len)
            abort();
    objstore_entries_free(e, n);
    free(token);
    s3_error_parse(code, sizeof(code), msg, sizeof(msg), xml, len);
    if (strlen(code) >= sizeof(code) || strlen(msg) >= sizeof(msg))
        abort();
    return 0;
}
