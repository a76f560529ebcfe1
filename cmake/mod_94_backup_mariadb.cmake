# agent/backup_mariadb.c: MariaDB full and incremental backups with
# mariadb-backup through the backup pipeline, and their restore.
# (After mod_94_agent_engine: reeve_agent_core links reeve_engine_mariadb.)
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/backup_mariadb.c)

# Against real MariaDB servers (mariadbd, mariadb-backup, mbstream): a chain
# of backups, restores of it and of its full backup, a damaged incremental.
add_executable(test_backup_mariadb ${CMAKE_SOURCE_DIR}/tests/agent/test_backup_mariadb.c)
target_link_libraries(test_backup_mariadb PRIVATE reeve_agent_core PkgConfig::CMOCKA)
add_test(NAME unit.test_backup_mariadb COMMAND test_backup_mariadb)
set_tests_properties(unit.test_backup_mariadb PROPERTIES LABELS unit TIMEOUT 300
  ENVIRONMENT "REEVE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
