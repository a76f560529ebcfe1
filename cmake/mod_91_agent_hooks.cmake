# agent/hooks.c: the external commands of the autopilot handlers.
target_sources(reeve_agent_core PRIVATE ${CMAKE_SOURCE_DIR}/agent/hooks.c)
