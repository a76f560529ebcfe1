# reconciler/window.c: maintenance windows (when disruptive actions may run)
# and pause files (clusters/<namespace>/PAUSED).
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/window.c)
