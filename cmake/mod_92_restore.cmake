# agent/restore.c: restore and point-in-time recovery of a PostgreSQL node
# from a backup (lib/objstore, lib/bstream).
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/restore.c)

# Restore against real servers: archiving, a full backup, restores, PITR and
# damaged backups. The test binary is also the servers' archive_command and
# restore_command (its "wal-push"/"wal-fetch" modes), so it must stay
# reachable by the postgres user.
add_executable(test_restore ${CMAKE_SOURCE_DIR}/tests/agent/test_restore.c)
target_sources(test_restore PRIVATE ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c
  ${CMAKE_SOURCE_DIR}/tests/agent/testutil_pg.c)
target_link_libraries(test_restore PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_restore COMMAND test_restore)
set_tests_properties(unit.test_restore PROPERTIES LABELS unit TIMEOUT 150
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR};REEVE_AGENT_BIN=$<TARGET_FILE:reeve-agent>")
add_dependencies(test_restore reeve-agent)

# `reeve-agent restore` (agent/restore_cmd.c, dispatched from agent/main.c).
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/restore_cmd.c)
