# lib/engutil.c: checks and small helpers the PostgreSQL and MariaDB engine
# adapters share (they build into different libraries, so it lives here).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/engutil.c)
