# reconciler/provider.c: the provider protocol client (providers/PROTOCOL.md).
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/provider.c)
find_package(Threads REQUIRED)
target_link_libraries(reeve_recon PUBLIC Threads::Threads)
