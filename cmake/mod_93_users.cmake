# Database users from the spec (docs/users.md): reconciler/users.c serves
# them in the agent configuration (passwords opened from sealed:, env: and
# file: references); agent/users.c applies them on the PostgreSQL primary.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/users.c)
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/users.c)

# Users against a real PostgreSQL server, and users_sync against an
# in-process reconciler (the DCS and the agent API compiled in, as for
# test_agent): registered here because it links the agent library
# (tests/unit/ tests link only reeve_recon).
add_executable(test_users_pg ${CMAKE_SOURCE_DIR}/tests/agent/test_users_pg.c
  ${CMAKE_SOURCE_DIR}/tests/agent/recon.c ${CMAKE_SOURCE_DIR}/reconciler/dcs.c
  ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c)
target_sources(test_users_pg PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c
  ${CMAKE_SOURCE_DIR}/tests/agent/testutil_pg.c)
# agent/ first: both folders have a config.h and a users.h.
target_compile_options(test_users_pg PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent"
  "SHELL:-iquote ${CMAKE_SOURCE_DIR}/reconciler")
target_link_libraries(test_users_pg PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_users_pg COMMAND test_users_pg)
set_tests_properties(unit.test_users_pg PROPERTIES LABELS unit TIMEOUT 120
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
