# reconciler/cmd_validate.c: the `reeve validate` command.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/cmd_validate.c)
