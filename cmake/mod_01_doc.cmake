# lib/doc.c: YAML/JSON documents with file:line:col on every node.
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/doc.c)
