# lib/httpd.c: the HTTP/1.1 server (libh2o on libuv, optional TLS).
target_sources(reeve_core PRIVATE ${CMAKE_SOURCE_DIR}/lib/httpd.c)
