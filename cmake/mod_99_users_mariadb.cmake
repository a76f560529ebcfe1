# agent/users_mariadb.c: the users of a MariaDB cluster, applied on its
# primary through engine_mariadb (docs/users.md, "MariaDB").
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/users_mariadb.c)
