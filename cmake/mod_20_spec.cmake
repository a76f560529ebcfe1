# specs-schema/: the spec model (clusters, policies, cross-file checks).
target_sources(reeve_spec PRIVATE
  ${CMAKE_SOURCE_DIR}/specs-schema/spec.c
  ${CMAKE_SOURCE_DIR}/specs-schema/policy.c)

# libFuzzer target; reeve_add_fuzzer comes from cmake/fuzz.cmake, which the
# top-level CMakeLists.txt includes after the modules, so the call is
# deferred to the end of the directory.
function(reeve_spec_add_fuzzer)
  if(COMMAND reeve_add_fuzzer)
    reeve_add_fuzzer(fuzz_spec ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_spec.c
                     ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/spec)
  else()
    message(WARNING "REEVE_FUZZ is on but cmake/fuzz.cmake defines no reeve_add_fuzzer; fuzz_spec not built")
  endif()
endfunction()
if(REEVE_FUZZ)
  cmake_language(DEFER CALL reeve_spec_add_fuzzer)
endif()
