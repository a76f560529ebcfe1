# reconciler/backups.c: backup records, agent configurations, restores and
# verification on the reconciler; cmd_backups.c: `reeve backups`.
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/backups.c
  ${CMAKE_SOURCE_DIR}/reconciler/cmd_backups.c)
