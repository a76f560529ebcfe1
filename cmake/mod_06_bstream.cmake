# lib/objstore.c (key checks, copy, local-directory store) and lib/bstream.c
# (the encoded backup format: zstd, AES-256-GCM chunks, SHA-256). libzstd and
# OpenSSL's libcrypto are already linked into reeve_core (CMakeLists.txt).
target_sources(reeve_core PRIVATE
  ${CMAKE_SOURCE_DIR}/lib/objstore.c
  ${CMAKE_SOURCE_DIR}/lib/bstream.c)

# libFuzzer target for the decoder; deferred like fuzz_spec (mod_20_spec.cmake)
# because cmake/fuzz.cmake is included after the modules.
function(reeve_bstream_add_fuzzer)
  if(COMMAND reeve_add_fuzzer)
    reeve_add_fuzzer(fuzz_bstream ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_bstream.c
                     ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/bstream)
  else()
    message(WARNING "REEVE_FUZZ is on but cmake/fuzz.cmake defines no reeve_add_fuzzer; fuzz_bstream not built")
  endif()
endfunction()
if(REEVE_FUZZ AND EXISTS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_bstream.c)
  cmake_language(DEFER CALL reeve_bstream_add_fuzzer)
endif()

# bench/bstream: encode/decode throughput of the backup format on a file (a
# benchmark tool, not a test; bench/bstream/run.sh).
add_executable(reeve-bstream-bench ${CMAKE_SOURCE_DIR}/bench/bstream/bench.c)
target_link_libraries(reeve-bstream-bench PRIVATE reeve_core)
