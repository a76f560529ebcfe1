# reconciler/serve: `reeve serve`, the GitOps loop (config, reconcile passes,
# plan pages, metrics, the event loop), and its embedded config schema.
reeve_embed(reeve_schema_config ${CMAKE_SOURCE_DIR}/specs-schema/config.schema.json
            ${REEVE_GEN_DIR}/schema_config_json.c)
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/config.c
  ${CMAKE_SOURCE_DIR}/reconciler/metrics.c
  ${CMAKE_SOURCE_DIR}/reconciler/pages.c
  ${CMAKE_SOURCE_DIR}/reconciler/reconcile.c
  ${CMAKE_SOURCE_DIR}/reconciler/serve.c
  ${CMAKE_SOURCE_DIR}/reconciler/cmd_serve.c
  ${REEVE_GEN_DIR}/schema_config_json.c)
