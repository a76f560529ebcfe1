# agent/engine_mariadb.c: reeve-agent's MariaDB engine adapter (libmariadb,
# and the server tools run as child processes). A library of its own, so it
# builds before reeve_agent_core (mod_90) exists; the agent links it when it
# drives MariaDB nodes.
pkg_check_modules(LIBMARIADB REQUIRED IMPORTED_TARGET libmariadb)
find_package(Threads REQUIRED)

add_library(reeve_engine_mariadb STATIC ${CMAKE_SOURCE_DIR}/agent/engine_mariadb.c)
target_compile_options(reeve_engine_mariadb PUBLIC "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent")
target_link_libraries(reeve_engine_mariadb PUBLIC reeve_core PkgConfig::LIBMARIADB Threads::Threads)

# Starts real servers (mariadbd, mariadb-backup), so it is registered here
# rather than under tests/unit/.
add_executable(test_mariadb ${CMAKE_SOURCE_DIR}/tests/agent/test_mariadb.c)
target_sources(test_mariadb PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c)
target_link_libraries(test_mariadb PRIVATE reeve_engine_mariadb PkgConfig::CMOCKA)
add_test(NAME unit.test_mariadb COMMAND test_mariadb)
set_tests_properties(unit.test_mariadb PROPERTIES LABELS unit TIMEOUT 180
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
