# lib/child.c: child-process framing (fork/exec with a deadline, a uid
# switch, bounded output, process-group kill).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/child.c)
