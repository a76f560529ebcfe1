# reconciler/executor.c: runs plans' action DAGs on a worker pool (control
# rods, retries, deadlines); journal.c: the action journal in SQLite.
find_package(Threads REQUIRED)
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/executor.c
  ${CMAKE_SOURCE_DIR}/reconciler/journal.c)
target_link_libraries(reeve_recon PUBLIC Threads::Threads)
