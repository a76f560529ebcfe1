/* test_crypto.c - lib/crypto against published vectors (FIPS 180-2 examples,
 * RFC 4231, RFC 4648) and the strictness rules of the decoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "err.h"

static void hex_of(char *out, size_t out_size, const uint8_t *md, size_t len)
{
    assert_int_equal(crypto_hex_encode(out, out_size, md, len), 0);
}

static void expect_sha256(const void *data, size_t len, const char *hex)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    char got[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(crypto_sha256(md, data, len), 0);
    hex_of(got, sizeof(got), md, sizeof(md));
    assert_string_equal(got, hex);
    assert_int_equal(crypto_sha256_hex(got, data, len), 0);
    assert_string_equal(got, hex);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    expect_sha256("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha256(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha256("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_sha256(two, strlen(two),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_streaming(void **state)
{
    (void)state;
    /* One million 'a', fed in uneven pieces. */
    char chunk[997];
    memset(chunk, 'a', sizeof(chunk));
    struct crypto_sha256_ctx c;
    assert_int_equal(crypto_sha256_init(&c), 0);
    size_t left = 1000000;
    size_t step = 1;
    while (left > 0) {
        size_t n = step < left ? step : left;
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        assert_int_equal(crypto_sha256_update(&c, chunk, n), 0);
        left -= n;
        step = step * 3 + 1;
    }
    assert_int_equal(crypto_sha256_update(&c, NULL, 0), 0);
    uint8_t md[CRYPTO_SHA256_LEN];
    char got[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(crypto_sha256_final(md, &c), 0);
    hex_of(got, sizeof(got), md, sizeof(md));
    assert_string_equal(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* final released the state: further use is refused, release is idempotent */
    assert_int_equal(crypto_sha256_update(&c, "x", 1), RV_EINVAL);
    assert_int_equal(crypto_sha256_final(md, &c), RV_EINVAL);
    crypto_sha256_release(&c);
    crypto_sha256_release(NULL);

    /* release without final does not leak (checked under ASan) */
    assert_int_equal(crypto_sha256_init(&c), 0);
    assert_int_equal(crypto_sha256_update(&c, "abc", 3), 0);
    crypto_sha256_release(&c);
}

static void expect_hmac(const void *key, size_t key_len, const void *data, size_t len,
                        const char *hex)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    char got[CRYPTO_SHA256_HEX_SIZE];
    assert_int_equal(crypto_hmac_sha256(mac, key, key_len, data, len), 0);
    hex_of(got, sizeof(got), mac, sizeof(mac));
    /* RFC 4231 case 5 publishes a truncated tag: compare its length only */
    assert_memory_equal(got, hex, strlen(hex));
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131], data[50];

    memset(key, 0x0b, 20);
    expect_hmac(key, 20, "Hi There", 8,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    expect_hmac("Jefe", 4, "what do ya want for nothing?", 28,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    expect_hmac(key, 20, data, 50,
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    expect_hmac(key, 25, data, 50,
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    memset(key, 0x0c, 20);
    expect_hmac(key, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
    memset(key, 0xaa, 131);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    expect_hmac(key, 131, d6, strlen(d6),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *d7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    expect_hmac(key, 131, d7, strlen(d7),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_hmac_github_example(void **state)
{
    (void)state;
    /* The example in GitHub's "Validating webhook deliveries" documentation. */
    const char *secret = "It's a Secret to Everybody";
    expect_hmac(secret, strlen(secret), "Hello, World!", 13,
                "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

static void test_hmac_empty_key_and_data(void **state)
{
    (void)state;
    /* HMAC-SHA256 with an empty key over empty data (a well-known value). */
    expect_hmac(NULL, 0, NULL, 0,
                "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    uint8_t mac[CRYPTO_SHA256_LEN];
    assert_int_equal(crypto_hmac_sha256(mac, NULL, 3, "x", 1), RV_EINVAL);
}

static void test_hex(void **state)
{
    (void)state;
    char out[16];
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xff};
    assert_int_equal(crypto_hex_encode(out, sizeof(out), in, sizeof(in)), 0);
    assert_string_equal(out, "0001abff");
    assert_int_equal(crypto_hex_encode(out, 8, in, sizeof(in)), RV_EINVAL); /* no room for NUL */
    assert_int_equal(crypto_hex_encode(out, 1, in, 0), 0);
    assert_string_equal(out, "");

    uint8_t bytes[4];
    size_t n = 99;
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), "0001ABff", 8), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(bytes, in, 4);
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), "", 0), 0);
    assert_int_equal(n, 0);
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), "abc", 3), RV_EPARSE);
    assert_int_equal(n, 0);
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), "0g", 2), RV_EPARSE);
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), " 0", 2), RV_EPARSE);
    assert_int_equal(crypto_hex_decode(bytes, &n, sizeof(bytes), "0x", 2), RV_EPARSE);
    assert_int_equal(crypto_hex_decode(bytes, &n, 2, "000102", 6), RV_EINVAL);
}

static void test_base64_rfc4648(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char enc[16];
        uint8_t dec[16];
        size_t n = 0;
        size_t len = strlen(plain[i]);
        assert_int_equal(CRYPTO_BASE64_ENCODED_LEN(len), strlen(coded[i]));
        assert_int_equal(crypto_base64_encode(enc, sizeof(enc), plain[i], len), 0);
        assert_string_equal(enc, coded[i]);
        assert_int_equal(crypto_base64_decode(dec, &n, sizeof(dec), coded[i], strlen(coded[i])), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, plain[i], len);
    }
    char enc[8];
    assert_int_equal(crypto_base64_encode(enc, 4, "f", 1), RV_EINVAL); /* "Zg==" + NUL needs 5 */
}

static void test_base64_binary_roundtrip(void **state)
{
    (void)state;
    uint8_t data[300], back[300];
    char enc[CRYPTO_BASE64_ENCODED_LEN(300) + 1];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(data); len += 37) {
        size_t n = 0;
        assert_int_equal(crypto_base64_encode(enc, sizeof(enc), data, len), 0);
        assert_int_equal(strlen(enc), CRYPTO_BASE64_ENCODED_LEN(len));
        assert_true(CRYPTO_BASE64_DECODED_MAX(strlen(enc)) >= len);
        assert_int_equal(crypto_base64_decode(back, &n, sizeof(back), enc, strlen(enc)), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, data, len);
    }
    /* every byte value survives */
    uint8_t all[256];
    char enc2[CRYPTO_BASE64_ENCODED_LEN(256) + 1];
    size_t n = 0;
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    assert_int_equal(crypto_base64_encode(enc2, sizeof(enc2), all, sizeof(all)), 0);
    assert_int_equal(crypto_base64_decode(back, &n, sizeof(back), enc2, strlen(enc2)), 0);
    assert_int_equal(n, 256);
    assert_memory_equal(back, all, 256);
}

static void expect_b64_reject(const char *s, int code)
{
    uint8_t out[32];
    size_t n = 77;
    assert_int_equal(crypto_base64_decode(out, &n, sizeof(out), s, strlen(s)), code);
    assert_int_equal(n, 0);
}

static void test_base64_strict(void **state)
{
    (void)state;
    expect_b64_reject("Zg=", RV_EPARSE);      /* length not a multiple of 4 */
    expect_b64_reject("Zg", RV_EPARSE);       /* padding omitted */
    expect_b64_reject("Zh==", RV_EPARSE);     /* non-zero unused bits */
    expect_b64_reject("Zm9=", RV_EPARSE);     /* non-zero unused bits */
    expect_b64_reject("Zm9v\n", RV_EPARSE);   /* whitespace */
    expect_b64_reject("Zm 9v", RV_EPARSE);    /* whitespace */
    expect_b64_reject("Zm=v", RV_EPARSE);     /* padding in the middle */
    expect_b64_reject("Zg==Zg==", RV_EPARSE); /* padding before the end */
    expect_b64_reject("====", RV_EPARSE);
    expect_b64_reject("A===", RV_EPARSE);
    expect_b64_reject("Zm9-", RV_EPARSE); /* URL-safe alphabet is not accepted */
    expect_b64_reject("Zm9_", RV_EPARSE);
    uint8_t small[2];
    size_t n = 0;
    assert_int_equal(crypto_base64_decode(small, &n, sizeof(small), "Zm9v", 4), RV_EINVAL);
}

static void test_equal_and_random(void **state)
{
    (void)state;
    assert_true(crypto_equal("abcd", "abcd", 4));
    assert_false(crypto_equal("abcd", "abce", 4));
    assert_true(crypto_equal("a", "b", 0));

    uint8_t a[64], b[64], zero[64] = {0};
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(crypto_random(a, sizeof(a)), 0);
    assert_int_equal(crypto_random(b, sizeof(b)), 0);
    /* 2^-512 chance of a false failure */
    assert_false(crypto_equal(a, b, sizeof(a)));
    assert_false(crypto_equal(a, zero, sizeof(a)));
    assert_int_equal(crypto_random(NULL, 0), 0);

    char secret[] = "hunter2";
    crypto_wipe(secret, strlen(secret));
    assert_memory_equal(secret, "\0\0\0\0\0\0\0", 7);
    crypto_wipe(NULL, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_streaming),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hmac_github_example),
        cmocka_unit_test(test_hmac_empty_key_and_data),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_binary_roundtrip),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_equal_and_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
