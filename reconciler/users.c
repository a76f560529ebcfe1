/* users.c - a cluster's database users on the reconciler (users.h). */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char digest_info[] = "reeve users digest v1";
/* The digest of the empty set: a constant, nothing secret in it. */
static const char empty_set[] = "reeve users: none";

json_t *users_row_json(const struct spec_cluster *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < c->nusers; i++) {
        const struct spec_user *u = &c->users[i];
        json_t *roles = json_array();
        for (size_t r = 0; roles != NULL && r < u->nroles; r++)
            if (json_array_append_new(roles, json_string(u->roles[r])) != 0) {
                json_decref(roles);
                roles = NULL;
            }
        json_t *o = roles != NULL ? json_pack("{s:s, s:o, s:s?}", "name", u->name, "roles", roles,
                                              "password_ref", u->password_ref)
                                  : NULL;
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* --- opening references --- */

static int bad_ref(struct rv_error *err, const char *user, const char *scope, const char *why)
{
    return rv_error_set(err, RV_EINVAL, false, "the password of user '%s' of %s: %s", user, scope,
                        why);
}

static int open_env(char **out, const char *user, const char *name, const char *scope,
                    struct rv_error *err)
{
    char why[256];
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        snprintf(why, sizeof(why),
                 "environment variable '%.64s' of reeve serve is %s; set it and restart reeve "
                 "serve, or seal the password with reeve seal",
                 name, v == NULL ? "not set" : "empty");
        return bad_ref(err, user, scope, why);
    }
    if (strlen(v) > RV_USERS_PASSWORD_MAX) {
        snprintf(why, sizeof(why), "environment variable '%.64s' is longer than %d bytes", name,
                 RV_USERS_PASSWORD_MAX);
        return bad_ref(err, user, scope, why);
    }
    *out = strdup(v);
    return *out != NULL ? 0 : rv_error_set(err, RV_ENOMEM, false, "out of memory");
}

/* At most RV_USERS_PASSWORD_MAX bytes, no NUL, trailing newlines dropped. */
static int open_file(char **out, const char *user, const char *path, const char *scope,
                     struct rv_error *err)
{
    char why[RV_ERROR_MSG_MAX / 2];
    struct stat st;
    size_t len = 0;
    ssize_t n = 1;
    int rc = 0;
    char *data = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, sizeof(why), "cannot read '%.128s' on the reconciler host: %s", path,
                 strerror(errno));
        return bad_ref(err, user, scope, why);
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > RV_USERS_PASSWORD_MAX) {
        snprintf(why, sizeof(why), "'%.128s' is not a regular file of at most %d bytes", path,
                 RV_USERS_PASSWORD_MAX);
        rc = bad_ref(err, user, scope, why);
        goto out;
    }
    data = malloc(RV_USERS_PASSWORD_MAX + 1);
    if (data == NULL) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    while (len < RV_USERS_PASSWORD_MAX + 1 &&
           (n = read(fd, data + len, RV_USERS_PASSWORD_MAX + 1 - len)) > 0)
        len += (size_t)n;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (n < 0 || len > RV_USERS_PASSWORD_MAX || len == 0 || memchr(data, '\0', len) != NULL) {
        snprintf(why, sizeof(why), "'%.128s' %s", path,
                 n < 0                         ? "cannot be read"
                 : len > RV_USERS_PASSWORD_MAX ? "grew while it was read"
                 : len == 0                    ? "is empty"
                                               : "holds a NUL byte; a password is text");
        rc = bad_ref(err, user, scope, why);
        goto out;
    }
    data[len] = '\0';
    *out = data;
    data = NULL;
out:
    if (data != NULL) {
        crypto_wipe(data, RV_USERS_PASSWORD_MAX + 1);
        free(data);
    }
    close(fd);
    return rc;
}

static int open_sealed(char **out, const char *user, const char *ref, const char *scope,
                       const struct seal_keys *keys, struct rv_error *err)
{
    struct rv_error e = {0};
    char why[RV_ERROR_MSG_MAX / 2];
    size_t len = 0;
    if (keys == NULL || !keys->has_priv)
        return bad_ref(err, user, scope,
                       "the reconciler's seal key pair is not loaded; sealed values cannot be "
                       "opened here");
    int rc = seal_decrypt(out, &len, keys, scope, ref, &e);
    if (rc == RV_ENOMEM)
        return rv_error_set(err, rc, false, "out of memory");
    if (rc != 0) {
        /* e.msg never holds the value; say what to do in our own words */
        snprintf(why, sizeof(why),
                 "the sealed value does not open for %s: it was sealed for another cluster or "
                 "another reconciler's key, or was modified; seal it again with reeve seal "
                 "--cluster %s",
                 scope, scope);
        return bad_ref(err, user, scope, why);
    }
    if (len == 0 || memchr(*out, '\0', len) != NULL) {
        crypto_wipe(*out, len);
        free(*out);
        *out = NULL;
        return bad_ref(err, user, scope, "the sealed value is empty or holds a NUL byte");
    }
    return 0;
}

int users_secret_open(char **out, const char *user, const char *ref, const char *scope,
                      const struct seal_keys *keys, struct rv_error *err)
{
    char why[128];
    int rc;
    *out = NULL;
    if (ref == NULL)
        return bad_ref(err, user, scope, "passwordRef is missing");
    if (strncmp(ref, "sealed:", 7) == 0)
        rc = open_sealed(out, user, ref, scope, keys, err);
    else if (strncmp(ref, "env:", 4) == 0)
        rc = open_env(out, user, ref + 4, scope, err);
    else if (strncmp(ref, "file:", 5) == 0 && ref[5] == '/')
        rc = open_file(out, user, ref + 5, scope, err);
    else
        return bad_ref(err, user, scope,
                       "passwordRef is not sealed:<base64>, env:NAME or file:/absolute/path");
    /* the agents keep at most this much per secret */
    if (rc == 0 && strlen(*out) > RV_USERS_PASSWORD_MAX) {
        crypto_wipe(*out, strlen(*out));
        free(*out);
        *out = NULL;
        snprintf(why, sizeof(why), "the password is longer than %d bytes", RV_USERS_PASSWORD_MAX);
        rc = bad_ref(err, user, scope, why);
    }
    return rc;
}

/* --- digests --- */

static int digest_key(uint8_t key[CRYPTO_SHA256_LEN], const struct seal_keys *keys)
{
    return crypto_hmac_sha256(key, keys->priv, SEAL_KEY_LEN, digest_info, sizeof(digest_info) - 1);
}

/* HMAC(key, scope NUL name NUL role NUL ... 0x01 password), hex. */
static int user_digest(char out[CRYPTO_SHA256_HEX_SIZE], const uint8_t key[CRYPTO_SHA256_LEN],
                       const char *scope, const char *name, const json_t *roles,
                       const char *password)
{
    size_t cap = strlen(scope) + strlen(name) + strlen(password) + 4, len = 0;
    size_t i;
    json_t *r;
    uint8_t mac[CRYPTO_SHA256_LEN];
    json_array_foreach(roles, i, r) cap += json_string_length(r) + 1;
    char *msg = malloc(cap);
    if (msg == NULL)
        return RV_ENOMEM;
    len += (size_t)sprintf(msg, "%s%c%s%c", scope, 0, name, 0);
    json_array_foreach(roles, i, r)
    {
        memcpy(msg + len, json_string_value(r), json_string_length(r) + 1);
        len += json_string_length(r) + 1;
    }
    msg[len++] = '\x01';
    memcpy(msg + len, password, strlen(password));
    len += strlen(password);
    int rc = crypto_hmac_sha256(mac, key, CRYPTO_SHA256_LEN, msg, len);
    if (rc == 0)
        rc = crypto_hex_encode(out, CRYPTO_SHA256_HEX_SIZE, mac, sizeof(mac));
    crypto_wipe(msg, cap);
    free(msg);
    return rc;
}

static int set_digest(char out[CRYPTO_SHA256_HEX_SIZE], const uint8_t key[CRYPTO_SHA256_LEN],
                      const json_t *users)
{
    size_t n = json_array_size(users), i;
    json_t *u;
    uint8_t mac[CRYPTO_SHA256_LEN];
    if (n == 0)
        return crypto_sha256_hex(out, empty_set, sizeof(empty_set) - 1);
    char *msg = malloc(n * CRYPTO_SHA256_HEX_SIZE + 5);
    if (msg == NULL)
        return RV_ENOMEM;
    size_t len = (size_t)sprintf(msg, "set%c", 0);
    json_array_foreach(users, i, u)
    {
        len += (size_t)sprintf(msg + len, "%s\n", json_string_value(json_object_get(u, "digest")));
    }
    int rc = crypto_hmac_sha256(mac, key, CRYPTO_SHA256_LEN, msg, len);
    if (rc == 0)
        rc = crypto_hex_encode(out, CRYPTO_SHA256_HEX_SIZE, mac, sizeof(mac));
    free(msg);
    return rc;
}

/* --- the agent configuration's users --- */

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "name")),
                  json_string_value(json_object_get(y, "name")));
}

void users_json_free(json_t *j)
{
    size_t i;
    json_t *u;
    json_array_foreach(j, i, u)
    {
        json_t *pw = json_object_get(u, "password");
        if (json_is_string(pw))
            crypto_wipe((char *)json_string_value(pw), json_string_length(pw));
    }
    json_decref(j);
}

/* One user of the configuration from one stored row member. */
static int config_user(json_t **out, const json_t *row, const char *scope,
                       const struct seal_keys *keys, const uint8_t key[CRYPTO_SHA256_LEN],
                       struct rv_error *err)
{
    const char *name = json_string_value(json_object_get(row, "name"));
    const json_t *roles = json_object_get(row, "roles");
    char *pw = NULL;
    char digest[CRYPTO_SHA256_HEX_SIZE];
    *out = NULL;
    if (name == NULL || !json_is_array(roles))
        return rv_error_set(err, RV_EINVAL, false,
                            "the stored users of %s are damaged; apply the spec again", scope);
    int rc = users_secret_open(&pw, name, json_string_value(json_object_get(row, "password_ref")),
                               scope, keys, err);
    if (rc != 0)
        return rc;
    rc = user_digest(digest, key, scope, name, roles, pw);
    if (rc == 0) {
        *out = json_pack("{s:s, s:o, s:s, s:s}", "name", name, "roles", json_deep_copy(roles),
                         "password", pw, "digest", digest);
        if (*out == NULL)
            rc = RV_ENOMEM;
    }
    crypto_wipe(pw, strlen(pw));
    free(pw);
    return rc == 0 ? 0 : rv_error_set(err, rc, false, "out of memory");
}

int users_config_json(json_t **out_users, char digest[CRYPTO_SHA256_HEX_SIZE], const json_t *row,
                      const char *scope, const struct seal_keys *keys, struct rv_error *err)
{
    uint8_t key[CRYPTO_SHA256_LEN];
    size_t n = json_array_size(row);
    json_t **sorted = NULL;
    json_t *arr = json_array();
    int rc = 0;
    *out_users = NULL;
    if (arr == NULL)
        return rv_error_set(err, RV_ENOMEM, false, "out of memory");
    if (n > RV_USERS_MAX) {
        rc = rv_error_set(err, RV_ELIMIT, false, "%s lists %zu users, more than %d", scope, n,
                          RV_USERS_MAX);
        goto out;
    }
    if (n > 0 && (keys == NULL || !keys->has_priv)) {
        rc = rv_error_set(err, RV_EINVAL, false,
                          "the users of %s cannot be served: the reconciler's seal key pair is "
                          "not loaded",
                          scope);
        goto out;
    }
    if (n > 0 && ((sorted = calloc(n, sizeof(*sorted))) == NULL || digest_key(key, keys) != 0)) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = config_user(&sorted[i], json_array_get(row, i), scope, keys, key, err)) != 0)
            goto out;
    }
    if (n > 1)
        qsort(sorted, n, sizeof(*sorted), by_name);
    for (size_t i = 0; i < n; i++) {
        if (json_array_append(arr, sorted[i]) != 0) {
            rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
            goto out;
        }
    }
    if (set_digest(digest, key, arr) != 0) {
        rc = rv_error_set(err, RV_ENOMEM, false, "out of memory");
        goto out;
    }
    *out_users = arr;
    arr = NULL;
out:
    for (size_t i = 0; sorted != NULL && i < n; i++)
        json_decref(sorted[i]);
    free(sorted);
    users_json_free(arr);
    crypto_wipe(key, sizeof(key));
    return rc;
}

/* --- the agent's report --- */

int users_applied_key(char *out, size_t cap, const char *cluster)
{
    int n = snprintf(out, cap, "/clusters/%s/" USERS_APPLIED_KEY_SUFFIX, cluster);
    return n > 0 && (size_t)n < cap ? 0 : RV_ELIMIT;
}

int users_applied_parse(struct users_applied *out, const char *text, struct rv_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    const char *digest = json_string_value(json_object_get(j, "digest"));
    const char *node = json_string_value(json_object_get(j, "node"));
    const char *error = json_string_value(json_object_get(j, "error"));
    size_t i;
    json_t *note;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (digest == NULL || strlen(digest) != CRYPTO_SHA256_HEX_SIZE - 1 || node == NULL) {
        rc = rv_error_set(err, RV_EPARSE, false,
                          "the users-applied report is not {\"digest\",\"node\",...}");
        goto out;
    }
    snprintf(out->digest, sizeof(out->digest), "%s", digest);
    snprintf(out->node, sizeof(out->node), "%s", node);
    snprintf(out->error, sizeof(out->error), "%s", error != NULL ? error : "");
    out->retryable = json_is_true(json_object_get(j, "retryable"));
    json_array_foreach(json_object_get(j, "notes"), i, note)
    {
        size_t used = strlen(out->notes);
        if (!json_is_string(note) || i >= RV_USERS_NOTES_MAX)
            break;
        snprintf(out->notes + used, sizeof(out->notes) - used, "%s%s", used ? "; " : "",
                 json_string_value(note));
    }
out:
    json_decref(j);
    return rc;
}
