# lib/db.c: SQLite helpers (open with WAL, migrations, statements, transactions).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/db.c)
