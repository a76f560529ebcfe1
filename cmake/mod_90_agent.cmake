# agent/: reeve-agent's engine adapters (PostgreSQL through libpq and the
# server tools run as child processes).
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)

add_library(reeve_agent_core STATIC ${CMAKE_SOURCE_DIR}/agent/engine_pg.c)
target_compile_options(reeve_agent_core PUBLIC "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent")
target_link_libraries(reeve_agent_core PUBLIC reeve_core PkgConfig::LIBPQ)

# Engine tests start real servers, so they live outside tests/unit/ (whose
# tests link only reeve_recon) and are registered here.
add_executable(test_pg ${CMAKE_SOURCE_DIR}/tests/agent/test_pg.c)
target_sources(test_pg PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c
  ${CMAKE_SOURCE_DIR}/tests/agent/testutil_pg.c)
target_link_libraries(test_pg PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_pg COMMAND test_pg)
set_tests_properties(unit.test_pg PROPERTIES LABELS unit TIMEOUT 120
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

# reeve-agent: configuration, agent API client, autopilot, and the binary.
target_sources(reeve_agent_core PRIVATE
  ${CMAKE_SOURCE_DIR}/agent/config.c
  ${CMAKE_SOURCE_DIR}/agent/dcs_client.c
  ${CMAKE_SOURCE_DIR}/agent/agent.c
  ${CMAKE_SOURCE_DIR}/agent/watchdog.c)
add_executable(reeve-agent ${CMAKE_SOURCE_DIR}/agent/main.c)
target_link_libraries(reeve-agent PRIVATE reeve_agent_core)

# The autopilot end to end: an in-process reconciler (DCS and agent API) and
# two reeve-agent processes running PostgreSQL. The DCS and the agent API
# need only lib/, so they are compiled in rather than taking all of
# reeve_recon.
add_executable(test_agent ${CMAKE_SOURCE_DIR}/tests/agent/test_agent.c ${CMAKE_SOURCE_DIR}/tests/agent/recon.c
  ${CMAKE_SOURCE_DIR}/reconciler/dcs.c ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c)
# agent/ first: both folders have a config.h.
target_compile_options(test_agent PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent"
  "SHELL:-iquote ${CMAKE_SOURCE_DIR}/reconciler")
target_link_libraries(test_agent PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_agent COMMAND test_agent)
set_tests_properties(unit.test_agent PROPERTIES LABELS unit TIMEOUT 150
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR};REEVE_AGENT_BIN=$<TARGET_FILE:reeve-agent>")
add_dependencies(test_agent reeve-agent)
