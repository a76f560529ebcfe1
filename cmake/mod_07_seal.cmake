# lib/seal.c: sealed secrets (X25519 + HKDF-SHA256 + AES-256-GCM).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/seal.c)
