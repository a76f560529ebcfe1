# reconciler/runners.c: the executor's runners of `reeve serve`.
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/runners.c)
