/* cmd_seal.c - `reeve seal`: encrypt a secret for a cluster's spec with the
 * reconciler's public key (lib/seal.h, docs/secrets.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h"
#include "cli_http.h"
#include "crypto.h"
#include "err.h"
#include "limits.h"
#include "seal.h"

static void usage(FILE *out)
{
    fputs("usage: reeve seal --cluster <namespace/name> (--key <seal.pub> | --server <URL>)\n"
          "                  [--from-file <path>]\n"
          "\n"
          "Encrypts a secret (a user's password) so that it can be committed to the\n"
          "spec repository: only the reconciler holding the matching private key can\n"
          "open it, and only for the named cluster. The secret is read from standard\n"
          "input (one line; the trailing newline is dropped) or from --from-file, and\n"
          "the value to paste into the spec is printed:\n"
          "\n"
          "  printf '%s' \"$PASSWORD\" | reeve seal --cluster payments/billing \\\n"
          "      --key /var/lib/reeve/seal.pub\n"
          "  sealed:AbCd...\n"
          "\n"
          "  users:\n"
          "    - name: billing_app\n"
          "      passwordRef: \"sealed:AbCd...\"\n"
          "\n"
          "options:\n"
          "  --cluster NS/NAME  the cluster whose spec will hold the value (required);\n"
          "                     the value does not open in another cluster's spec\n"
          "  --key PATH         the reconciler's public key: seal.pub in its dataDir,\n"
          "                     created on the first start of `reeve serve`; it is\n"
          "                     public and can be copied anywhere\n"
          "  --server URL       fetch the public key from a running reeve instead\n"
          "                     (GET URL/api/v1/seal-key), e.g. http://127.0.0.1:8080\n"
          "  --from-file PATH   read the secret from a file instead of standard input\n"
          "\n"
          "exit status: 0 sealed, 2 usage or I/O error.\n",
          out);
}

/* Read at most RV_SEAL_PLAIN_MAX bytes; more is an error. One trailing
 * newline (\n or \r\n) is dropped. */
static int read_secret(char *buf, size_t *len, FILE *in, const char *what)
{
    size_t n = fread(buf, 1, RV_SEAL_PLAIN_MAX, in);
    if (ferror(in)) {
        fprintf(stderr, "error: cannot read the secret from %s\n", what);
        return 2;
    }
    if (n == RV_SEAL_PLAIN_MAX && fgetc(in) != EOF) {
        fprintf(stderr, "error: the secret from %s is longer than %d bytes\n", what,
                RV_SEAL_PLAIN_MAX);
        return 2;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0) {
        fprintf(stderr, "error: the secret from %s is empty\n", what);
        return 2;
    }
    *len = n;
    return 0;
}

static bool scope_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
        return false;
    if ((size_t)(slash - s) > RV_NAME_MAX || strlen(slash + 1) > RV_NAME_MAX)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (p != slash && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    }
    return true;
}

/* The public key of the reeve at server (GET /api/v1/seal-key). */
static int server_key(struct seal_keys *k, const char *server)
{
    char url[RV_PATH_MAX];
    char *text = NULL;
    struct rv_error err = {0};
    size_t len = strlen(server);
    while (len > 0 && server[len - 1] == '/')
        len--;
    if ((size_t)snprintf(url, sizeof(url), "%.*s/api/v1/seal-key", (int)len, server) >=
        sizeof(url)) {
        fprintf(stderr, "error: --server URL too long\n");
        return -1;
    }
    struct cli_http_req r = {.method = "GET",
                             .url = url,
                             .timeout_ms = RV_CLI_HTTP_CONNECT_TIMEOUT_MS * 3,
                             .agent = "reeve-seal",
                             .api = "seal key route",
                             .accept = "text/plain"};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return -1;
    }
    int rc = cli_http_text(&text, &r) == CLI_HTTP_OK ? 0 : -1;
    curl_global_cleanup();
    if (rc == 0 && seal_pub_parse(k, text, &err) != 0) {
        fprintf(stderr, "error: %s: %s\n", url, err.msg);
        rc = -1;
    }
    free(text);
    return rc;
}

int cmd_seal(int argc, char **argv)
{
    const char *cluster = NULL, *key_path = NULL, *from = NULL, *server = NULL;
    struct seal_keys k;
    struct rv_error err = {0};
    char *secret = NULL, *sealed = NULL;
    size_t len = 0;
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key_path = argv[++i];
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else if (strcmp(argv[i], "--from-file") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (cluster == NULL || (key_path == NULL) == (server == NULL)) {
        fprintf(stderr, "error: --cluster and one of --key or --server are required\n");
        usage(stderr);
        return 2;
    }
    if (!scope_ok(cluster)) {
        fprintf(stderr, "error: --cluster must be <namespace>/<name> as in the spec's metadata "
                        "(lowercase letters, digits and '-'), got '%s'\n",
                cluster);
        return 2;
    }
    if (key_path != NULL ? seal_pub_load(&k, key_path, &err) != 0 : server_key(&k, server) != 0) {
        if (key_path != NULL)
            fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }
    secret = malloc(RV_SEAL_PLAIN_MAX);
    if (secret == NULL) {
        fprintf(stderr, "error: out of memory\n");
        return 2;
    }
    if (from != NULL) {
        FILE *f = fopen(from, "re");
        if (f == NULL) {
            fprintf(stderr, "error: cannot open %s\n", from);
            goto out;
        }
        rc = read_secret(secret, &len, f, from);
        fclose(f);
    } else {
        if (isatty(STDIN_FILENO))
            fputs("secret (end with Enter, then Ctrl-D): ", stderr);
        rc = read_secret(secret, &len, stdin, "standard input");
    }
    if (rc != 0)
        goto out;
    if (seal_encrypt(&sealed, &k, cluster, secret, len, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    printf("%s\n", sealed);
    rc = 0;
out:
    crypto_wipe(secret, RV_SEAL_PLAIN_MAX);
    free(secret);
    free(sealed);
    return rc;
}
