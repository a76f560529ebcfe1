# reconciler/cmd_status.c: `reeve status`, a client of reeve serve's /api/v1/status.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/cmd_status.c)
