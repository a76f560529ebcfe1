# lib/sigv4.c: AWS Signature Version 4; lib/s3.c: the S3-compatible object
# store (libcurl, blocking).
target_sources(reeve_core PRIVATE
  ${CMAKE_SOURCE_DIR}/lib/sigv4.c
  ${CMAKE_SOURCE_DIR}/lib/s3.c)

# tests/unit/test_s3.c starts the S3 test server (node, tests/peers) and
# moves a 20 MiB object: give it more than the default unit-test time. The
# test is registered by the tests/unit loop after the modules, hence DEFER.
function(reeve_s3_test_props)
  if(TEST unit.test_s3)
    set_tests_properties(unit.test_s3 PROPERTIES TIMEOUT 180)
  endif()
endfunction()
cmake_language(DEFER CALL reeve_s3_test_props)

# The parsers of S3's XML answers (network input) under libFuzzer.
function(reeve_s3_add_fuzzer)
  if(COMMAND reeve_add_fuzzer)
    reeve_add_fuzzer(fuzz_s3xml ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_s3xml.c
                     ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/s3xml)
  endif()
endfunction()
if(REEVE_FUZZ AND EXISTS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_s3xml.c)
  cmake_language(DEFER CALL reeve_s3_add_fuzzer)
endif()
