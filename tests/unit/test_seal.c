/* test_seal.c - lib/seal: key pair files, sealing and opening, scopes,
 * tampering and wrong keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "seal.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/reeve-test-seal-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_pair_created_once(void **state)
{
    struct seal_keys a, b, pub;
    struct rv_error err = {0};
    char path[128];
    struct stat st;
    (void)state;
    assert_int_equal(seal_keys_load_or_create(&a, dir, &err), 0);
    snprintf(path, sizeof(path), "%s/seal.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The second start loads the same pair. */
    assert_int_equal(seal_keys_load_or_create(&b, dir, &err), 0);
    assert_memory_equal(a.pub, b.pub, SEAL_KEY_LEN);
    assert_memory_equal(a.priv, b.priv, SEAL_KEY_LEN);
    snprintf(path, sizeof(path), "%s/seal.pub", dir);
    assert_int_equal(seal_pub_load(&pub, path, &err), 0);
    assert_memory_equal(a.pub, pub.pub, SEAL_KEY_LEN);
    assert_int_equal(pub.has_priv, 0);
    /* Losing one half is an error, never a silent new pair. */
    unlink(path);
    assert_int_equal(seal_keys_load_or_create(&b, dir, &err), RV_EINVAL);
    assert_non_null(strstr(err.msg, "seal.pub"));
    seal_keys_wipe(&a);
    seal_keys_wipe(&b);
}

static void test_round_trip_and_scope(void **state)
{
    struct seal_keys k, other, pub;
    struct rv_error err = {0};
    char line[128], *sealed = NULL, *plain = NULL, *again = NULL;
    size_t n = 0;
    (void)state;
    assert_int_equal(seal_keys_load_or_create(&k, dir, &err), 0);
    /* Seal with the public half only, as `reeve seal` does. */
    assert_int_equal(seal_pub_format(&k, line, sizeof(line)), 0);
    assert_int_equal(seal_pub_parse(&pub, line, &err), 0);
    assert_int_equal(seal_encrypt(&sealed, &pub, "payments/billing", "s3cret!", 7, &err), 0);
    assert_int_equal(strncmp(sealed, "sealed:", 7), 0);
    assert_null(strstr(sealed, "s3cret"));
    /* Two seals of the same value differ (fresh ephemeral key and nonce). */
    assert_int_equal(seal_encrypt(&again, &pub, "payments/billing", "s3cret!", 7, &err), 0);
    assert_string_not_equal(sealed, again);
    assert_int_equal(seal_decrypt(&plain, &n, &k, "payments/billing", sealed, &err), 0);
    assert_int_equal(n, 7);
    assert_string_equal(plain, "s3cret!");
    free(plain);
    /* Another cluster cannot open it. */
    assert_int_equal(seal_decrypt(&plain, &n, &k, "payments/ledger", sealed, &err),
                     RV_EINTEGRITY);
    assert_null(plain);
    assert_non_null(strstr(err.msg, "payments/ledger"));
    /* Nor can another reconciler. */
    memset(&other, 0, sizeof(other));
    assert_int_equal(crypto_random(other.priv, SEAL_KEY_LEN), 0);
    other.has_priv = 1;
    memcpy(other.pub, k.pub, SEAL_KEY_LEN);
    assert_int_equal(seal_decrypt(&plain, &n, &other, "payments/billing", sealed, &err),
                     RV_EINTEGRITY);
    /* The public half alone cannot open anything. */
    assert_int_equal(seal_decrypt(&plain, &n, &pub, "payments/billing", sealed, &err), RV_EINVAL);
    free(sealed);
    free(again);
    seal_keys_wipe(&k);
}

static void test_tampering(void **state)
{
    struct seal_keys k;
    struct rv_error err = {0};
    char *sealed = NULL, *plain = NULL;
    size_t n = 0;
    (void)state;
    assert_int_equal(seal_keys_load_or_create(&k, dir, &err), 0);
    assert_int_equal(seal_encrypt(&sealed, &k, "a/b", "password", 8, &err), 0);
    size_t len = strlen(sealed);
    for (size_t i = 7; i < len; i += 5) {
        char saved = sealed[i];
        if (saved == '=')
            continue;
        sealed[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(seal_decrypt(&plain, &n, &k, "a/b", sealed, &err), RV_EINTEGRITY);
        sealed[i] = saved;
    }
    sealed[len - 8] = '\0';
    assert_int_equal(seal_decrypt(&plain, &n, &k, "a/b", sealed, &err), RV_EINTEGRITY);
    assert_int_equal(seal_decrypt(&plain, &n, &k, "a/b", "sealed:AAAA", &err), RV_EINTEGRITY);
    assert_int_equal(seal_decrypt(&plain, &n, &k, "", "sealed:AAAA", &err), RV_EINVAL);
    free(sealed);
    seal_keys_wipe(&k);
}

static void test_bad_public_key(void **state)
{
    struct seal_keys k;
    struct rv_error err = {0};
    (void)state;
    assert_int_equal(seal_pub_parse(&k, "ssh-ed25519 AAAA", &err), RV_EPARSE);
    assert_int_equal(seal_pub_parse(&k, "reeve-seal-v1 AAAA\n", &err), RV_EPARSE);
    assert_non_null(strstr(err.msg, "32 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_created_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_and_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampering, setup, teardown),
        cmocka_unit_test(test_bad_public_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
