# reconciler/observed.c, planner.c, cmd_plan.c: observed state, the planner and `reeve plan`.
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/observed.c
  ${CMAKE_SOURCE_DIR}/reconciler/planner.c
  ${CMAKE_SOURCE_DIR}/reconciler/cmd_plan.c)
