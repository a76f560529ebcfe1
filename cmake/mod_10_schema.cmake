# specs-schema/: the JSON Schemas, embedded in the binary, and their interpreter.
set(REEVE_SCHEMA_DIR ${CMAKE_SOURCE_DIR}/specs-schema)
reeve_embed(reeve_schema_cluster ${REEVE_SCHEMA_DIR}/cluster.schema.json
            ${REEVE_GEN_DIR}/schema_cluster_json.c)
reeve_embed(reeve_schema_cluster_tf ${REEVE_SCHEMA_DIR}/cluster.tf.schema.json
            ${REEVE_GEN_DIR}/schema_cluster_tf_json.c)
reeve_embed(reeve_schema_policy ${REEVE_SCHEMA_DIR}/policy.schema.json
            ${REEVE_GEN_DIR}/schema_policy_json.c)
target_sources(reeve_spec PRIVATE
  ${REEVE_SCHEMA_DIR}/schema.c
  ${REEVE_GEN_DIR}/schema_cluster_json.c
  ${REEVE_GEN_DIR}/schema_cluster_tf_json.c
  ${REEVE_GEN_DIR}/schema_policy_json.c)
