# agent/engine.c: the autopilot's engine interface over engine_pg and
# engine_mariadb (agent/engine.h); reeve-agent drives MariaDB through it.
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/engine.c)
target_link_libraries(reeve_agent_core PUBLIC reeve_engine_mariadb)

# The interface and the engine part of the agent configuration, no servers.
add_executable(test_engine ${CMAKE_SOURCE_DIR}/tests/agent/test_engine.c)
target_link_libraries(test_engine PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_engine COMMAND test_engine)
set_tests_properties(unit.test_engine PROPERTIES LABELS unit TIMEOUT 30
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
