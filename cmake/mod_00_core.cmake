# lib/: the shared core linked by every binary.
target_sources(reeve_core PRIVATE
  ${CMAKE_SOURCE_DIR}/lib/err.c
  ${CMAKE_SOURCE_DIR}/lib/log.c
  ${CMAKE_SOURCE_DIR}/lib/buf.c
  ${CMAKE_SOURCE_DIR}/lib/diag.c)
