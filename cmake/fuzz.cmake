# Fuzzing (libFuzzer). Included from CMakeLists.txt when REEVE_FUZZ=ON.
#
#   reeve_add_fuzzer(<name> <source> <corpus_dir>)
#
# builds <name> from <source> with -fsanitize=fuzzer,address,undefined,
# linked with reeve_recon, and registers two ctests labelled "fuzz":
#   fuzz.<name>.corpus  replays every file of <corpus_dir> once;
#   fuzz.<name>.minute  fuzzes for 60 s, starting from a copy of <corpus_dir>
#                       in the build tree (new inputs land there, never in
#                       the source tree); crashes are saved in
#                       <build>/fuzz/<name>-artifacts/.
#
# A module registers its fuzzer from its own cmake/mod_*.cmake; as modules are
# included before this file, it defers the call to the end of the directory
# (cmake_language(DEFER CALL ...)).
#
# The same file, run with `cmake -P`, is the driver of the minute test: it
# refreshes the copy of the corpus and then runs the fuzzer.

if(CMAKE_SCRIPT_MODE_FILE)
  file(MAKE_DIRECTORY ${WORK} ${ARTIFACTS})
  file(GLOB seeds ${CORPUS}/*)
  if(seeds)
    file(COPY ${seeds} DESTINATION ${WORK})
  endif()
  execute_process(
    COMMAND ${FUZZER} -max_total_time=60 -rss_limit_mb=2048 -timeout=10
            -artifact_prefix=${ARTIFACTS}/ ${WORK}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzzer ${FUZZER} failed (${rc}); reproducers are in ${ARTIFACTS}")
  endif()
  return()
endif()

if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "REEVE_FUZZ needs clang: configure with -DCMAKE_C_COMPILER=clang")
endif()

# libFuzzer steers by the coverage of the code under test, so the libraries
# get coverage instrumentation too. Its hooks are provided by the sanitizer
# runtime, which every reeve binary links only when REEVE_SANITIZE is on.
if(REEVE_SANITIZE)
  foreach(lib reeve_core reeve_spec reeve_recon)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link)
  endforeach()
else()
  message(WARNING "REEVE_FUZZ without REEVE_SANITIZE: library code is not coverage-"
                  "instrumented, so fuzzers only replay and mutate blindly")
endif()

function(reeve_add_fuzzer name source corpus_dir)
  add_executable(${name} ${source})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined
                         -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE reeve_recon)

  set(work ${CMAKE_BINARY_DIR}/fuzz/${name}-corpus)
  set(artifacts ${CMAKE_BINARY_DIR}/fuzz/${name}-artifacts)
  add_test(NAME fuzz.${name}.corpus COMMAND ${name} -runs=0 ${corpus_dir})
  add_test(NAME fuzz.${name}.minute
           COMMAND ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:${name}> -DCORPUS=${corpus_dir}
                   -DWORK=${work} -DARTIFACTS=${artifacts} -P ${CMAKE_SOURCE_DIR}/cmake/fuzz.cmake)
  set_tests_properties(fuzz.${name}.corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  set_tests_properties(fuzz.${name}.minute PROPERTIES LABELS fuzz TIMEOUT 150)
endfunction()

reeve_add_fuzzer(fuzz_doc ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_doc.c
                 ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/doc)
