# specs-schema/params.c: the engines' parameter catalogs (generated tables
# params_pg15.inc and params_mariadb1011.inc, made by scripts/gen-params.sh).
target_sources(reeve_spec PRIVATE ${CMAKE_SOURCE_DIR}/specs-schema/params.c)
set_source_files_properties(${CMAKE_SOURCE_DIR}/specs-schema/params.c PROPERTIES
  OBJECT_DEPENDS "${CMAKE_SOURCE_DIR}/specs-schema/params_pg15.inc;${CMAKE_SOURCE_DIR}/specs-schema/params_mariadb1011.inc")
