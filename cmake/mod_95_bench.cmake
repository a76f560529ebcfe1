# bench/failover: the helper of bench/failover/run.sh (a benchmark tool, not
# a test): the DCS and agent API hosted in-process, and the write probe.
add_executable(reeve-failover-bench ${CMAKE_SOURCE_DIR}/bench/failover/harness.c
  ${CMAKE_SOURCE_DIR}/reconciler/dcs.c ${CMAKE_SOURCE_DIR}/reconciler/agentapi.c)
target_compile_options(reeve-failover-bench PRIVATE "SHELL:-iquote ${CMAKE_SOURCE_DIR}/reconciler")
target_link_libraries(reeve-failover-bench PRIVATE reeve_agent_core)
