# reconciler/webhook.c: forge webhooks (verify, parse, dedup, HTTP route).
target_sources(reeve_recon PRIVATE ${CMAKE_SOURCE_DIR}/reconciler/webhook.c)
