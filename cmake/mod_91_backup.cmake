# Backups in reeve-agent: cron (lib/), the local backup database, the
# scheduler, the PostgreSQL and external backup methods, WAL archiving.
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/cron.c)

target_sources(reeve_agent_core PRIVATE
  ${CMAKE_SOURCE_DIR}/agent/backup_db.c
  ${CMAKE_SOURCE_DIR}/agent/backup_pg.c
  ${CMAKE_SOURCE_DIR}/agent/backup_cmd.c
  ${CMAKE_SOURCE_DIR}/agent/backupd.c)
find_package(Threads REQUIRED)
target_link_libraries(reeve_agent_core PUBLIC Threads::Threads)

# Backups against a real PostgreSQL server, the reeve-agent binary (WAL
# archiving, the backup subcommand) and a fake reconciler.
add_executable(test_backup ${CMAKE_SOURCE_DIR}/tests/agent/test_backup.c)
target_sources(test_backup PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c
  ${CMAKE_SOURCE_DIR}/tests/agent/testutil_pg.c)
target_link_libraries(test_backup PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_backup COMMAND test_backup)
set_tests_properties(unit.test_backup PROPERTIES LABELS unit TIMEOUT 180
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR};REEVE_AGENT_BIN=$<TARGET_FILE:reeve-agent>")
add_dependencies(test_backup reeve-agent)
