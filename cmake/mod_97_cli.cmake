# reconciler/cmd_seal.c: `reeve seal`.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/cmd_seal.c)
# reconciler/cli_http.c: the HTTP call of reeve status, backups and seal.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/cli_http.c)
