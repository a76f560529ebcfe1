# providers/local/: reeve-provider-local, the `local` provider (PostgreSQL
# instances on this machine run by reeve-agent; docs/providers.md).
add_executable(reeve-provider-local ${CMAKE_SOURCE_DIR}/providers/local/main.c
  ${CMAKE_SOURCE_DIR}/providers/local/local.c)
target_compile_options(reeve-provider-local PRIVATE
  "SHELL:-iquote ${CMAKE_SOURCE_DIR}/providers/local")
target_link_libraries(reeve-provider-local PRIVATE reeve_core)
set_target_properties(reeve-provider-local PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# The local provider end to end: the provider client (reconciler/provider.c),
# an in-process DCS and agent API, two instances of one cluster.
add_executable(test_local_provider ${CMAKE_SOURCE_DIR}/tests/agent/test_local_provider.c ${CMAKE_SOURCE_DIR}/tests/agent/recon.c
  ${CMAKE_SOURCE_DIR}/reconciler/provider.c ${CMAKE_SOURCE_DIR}/reconciler/dcs.c
  ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c)
target_sources(test_local_provider PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c)
target_compile_options(test_local_provider PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent"
  "SHELL:-iquote ${CMAKE_SOURCE_DIR}/reconciler")
target_link_libraries(test_local_provider PRIVATE reeve_agent_core PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit.test_local_provider COMMAND test_local_provider)
set_tests_properties(unit.test_local_provider PROPERTIES LABELS unit TIMEOUT 120
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR};REEVE_AGENT_BIN=$<TARGET_FILE:reeve-agent>;REEVE_PROVIDER_LOCAL_BIN=$<TARGET_FILE:reeve-provider-local>")
add_dependencies(test_local_provider reeve-agent reeve-provider-local)
