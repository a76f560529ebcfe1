# reconciler/store.c: the reconciler's schema; forge.c: commit-status clients
# for GitHub, Gitea and GitLab; outbox.c: the persisted status outbox.
target_sources(reeve_recon PRIVATE
  ${CMAKE_SOURCE_DIR}/reconciler/store.c
  ${CMAKE_SOURCE_DIR}/reconciler/forge.c
  ${CMAKE_SOURCE_DIR}/reconciler/outbox.c)
