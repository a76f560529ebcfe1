/* engutil.h - checks and small helpers both database engine adapters
 * (agent/engine_pg.c, agent/engine_mariadb.c) share: copying a required
 * setting, the characters names, hosts and paths may hold, paths under a
 * data directory and directories handed to the server's OS user. label is
 * the adapter's name, put in front of every message ("<label>: ...").
 */
#ifndef REEVE_ENGUTIL_H
#define REEVE_ENGUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "fsutil.h"

/* Copy the setting what (src) into dst of cap bytes. RV_EINVAL when it is
 * missing or empty, RV_ELIMIT when it does not fit. */
int eng_copy_str(char *dst, size_t cap, const char *src, const char *what, const char *label,
                 struct rv_error *err);

/* 1 to max letters, digits, '_' and '-': user, role and node names, which
 * go into SQL, conninfo and file names unquoted or between quotes. */
bool eng_valid_name(const char *s, size_t max);

/* 1 to max letters, digits, '.', '-', ':' and '/': hosts, addresses, CIDRs. */
bool eng_valid_host(const char *s, size_t max);

/* 1 to max lower-case letters, digits and '_': replication slots, server
 * variable names. */
bool eng_valid_lower(const char *s, size_t max);

/* An absolute path without control characters, quotes, '\\', '$', '`',
 * spaces or any character of also_refused (may be NULL), so that a
 * configuration file or a command line takes it unquoted. */
bool eng_valid_path(const char *s, const char *also_refused);

/* dst = "<dir>/<name>"; RV_ELIMIT when it does not fit in cap bytes. */
int eng_join_path(char *dst, size_t cap, const char *dir, const char *name, const char *label,
                  struct rv_error *err);

/* A data directory must be missing or empty before it is made or filled
 * (initdb, install, a clone): 0 then, *exists (may be NULL) saying whether
 * it is there; RV_EEXISTS "<label>: data directory '<path>' is not empty;
 * remove it or use another", or RV_EIO. */
int eng_check_empty_dir(const char *path, bool *exists, const char *label, struct rv_error *err);

/* mkdir path 0700 (an existing one is left alone) and, when owner is not
 * NULL, hand the new directory to it. RV_EIO on failure. */
int eng_ensure_dir(const char *path, const struct fs_owner *owner, const char *label,
                   struct rv_error *err);

#endif
