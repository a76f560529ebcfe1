# lib/fsutil.c: replacing a file atomically and durably (temporary file,
# fsync, rename, fsync of the directory).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/fsutil.c)
