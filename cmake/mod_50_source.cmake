# reconciler/source.c: the Git source (libgit2 mirror, fetch, tree diff, spec loading).
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/source.c)
