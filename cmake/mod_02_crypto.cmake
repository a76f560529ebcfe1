# lib/crypto.c: SHA-256, HMAC-SHA256, hex, base64, constant-time compare, random.
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/crypto.c)
