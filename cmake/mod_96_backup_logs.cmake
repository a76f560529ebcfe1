# Backup log lines synced to the reconciler (docs/backups.md): the agent's
# sync of backup.db's logs table against an in-process reconciler (the DCS
# and the agent API compiled in, as for test_users_pg). No database server.
add_executable(test_backup_logs ${CMAKE_SOURCE_DIR}/tests/agent/test_backup_logs.c
  ${CMAKE_SOURCE_DIR}/tests/agent/recon.c ${CMAKE_SOURCE_DIR}/reconciler/dcs.c
  ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c ${CMAKE_SOURCE_DIR}/tests/agent/testutil.c)
# agent/ first: both folders have a config.h.
target_compile_options(test_backup_logs PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/agent"
  "SHELL:-iquote ${CMAKE_SOURCE_DIR}/reconciler")
target_link_libraries(test_backup_logs PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_backup_logs COMMAND test_backup_logs)
set_tests_properties(unit.test_backup_logs PROPERTIES LABELS unit TIMEOUT 60
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
