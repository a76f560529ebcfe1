# reconciler/dcs.c: the built-in DCS (keys, sessions, transactions, watch,
# SQLite persistence); reconciler/agentapi.c: its HTTP API for agents.
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/dcs.c)
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c)
