# Day-2 operations, the agent's side (agent/ops.c): parameters, restarts
# and switchovers asked through DCS keys. The runners' side is in
# reconciler/runners.c; tests/unit/test_day2.c is registered by the loop.
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/ops.c)
