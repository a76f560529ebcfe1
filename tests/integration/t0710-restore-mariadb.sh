#!/usr/bin/env bash
# t0710-restore-mariadb: a MariaDB cluster restored from its mariabackup
# backups through the GitOps loop (harness: apply.sh; servers and agents run
# as the mysql user through the `local` provider).
#
#   1. demo/kvsrc (mariadb 10.11, 1 instance, encrypted backups to a local
#      directory) merged: reeve/apply success
#   2. rows, then a full backup (`reeve-agent backup` on the node), more
#      rows, a second full backup; `reeve backups list` shows both with
#      method mariabackup, and `reeve backups verify` checks the first
#   3. demo/kvdst merged with bootstrap.fromBackup {cluster: demo/kvsrc,
#      backupId: the first}: reeve/apply success, and the new cluster holds
#      exactly the rows of the first backup (same count and checksum) and
#      takes writes
#   4. the backup files hold no clear text of the rows
#
# Needs root and mariadb-server. Bounded: T0710_APPLY seconds per apply
# (default 150), T0710_BUDGET for the run (default 400).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
need_cmd mariadb
[ -x /usr/sbin/mariadbd ] || die "mariadb-server is not installed (scripts/deps.sh)"
id mysql >/dev/null 2>&1 || die "no mysql user (mariadb-server creates it)"
APPLY=${T0710_APPLY:-150}
PER_CLUSTER=2
BUDGET=${T0710_BUDGET:-400}
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export REEVE_T0710_KEY=$KEY
REEVE_YAML_EXTRA="backupKeys: {k1: {secretRef: env:REEVE_T0710_KEY}}"
. "$(dirname "$0")/apply.sh"

at_exit stop_mariadb

BK=$T_TMP/backups
mkdir -p "$BK/kvsrc"
chown -R mysql:mysql "$BK"
chmod 0700 "$BK/kvsrc"

spec() { # NAME EXTRA_YAML: write clusters/demo/NAME.yaml (1 instance)
    mkdir -p "$W/clusters/demo"
    cat >"$W/clusters/demo/$1.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata: {name: $1, namespace: demo}
spec:
  engine: mariadb
  version: "10.11"
  provider: local
  region: local
  instances: 1
  resources: {cpu: 1, memoryMiB: 256, storageGiB: 1}
  deletionProtection: false
$2
EOF
}
backup_now() { # CONF: a full backup by the node's agent (retried until it has its configuration)
    local out i
    for ((i = 0; i < 60; i++)); do
        if out=$(timeout 300 runuser -u mysql -- "$AGENT" backup -c "$1" --json 2>>"$T_TMP/backup.err"); then
            echo "$out"
            return 0
        fi
        sleep 1
    done
    return 1
}
rows_sum() { # NODE: "count checksum" of app.t
    mdb_on "$1" "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM app.t" | tr '\t' ' '
}

say "reeve serve on $R_URL, instances under $ROOT, backups under $BK"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"

# --- 1. the source ----------------------------------------------------------------
say "1. demo/kvsrc with encrypted mariabackup backups"
spec kvsrc "  backup:
    schedule: {full: \"0 3 * * *\"}
    retention: {days: 7}
    destination: {local: {path: $BK/kvsrc}}
    encryption: {keyRef: k1}"
M1=$(commit_push "demo/kvsrc")
wait_apply "$M1" "demo/kvsrc" || true
SRC_P=$(wait_primary kvsrc)
[ -n "$SRC_P" ] || die "demo/kvsrc has no healthy primary"
CONF=$(agent_conf_of "$SRC_P")

# --- 2. rows and two backups ------------------------------------------------------------
say "2. rows, a backup, more rows, another backup"
mdb_on "$SRC_P" "CREATE DATABASE app; USE app; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;
    INSERT INTO t SELECT seq, CONCAT('kv-secret-row-', seq) FROM seq_1_to_2000" >/dev/null ||
    die "cannot write on $SRC_P"
SUM1=$(rows_sum "$SRC_P")
B1=$(backup_now "$CONF" | jq -r '.backup_id // ""' || true)
[ -n "$B1" ] && ok "first backup $B1" || fail "the first backup failed: $(tail -n 3 "$T_TMP/backup.err")"
mdb_on "$SRC_P" "USE app; INSERT INTO t SELECT seq, CONCAT('later-', seq) FROM seq_2001_to_2500" >/dev/null ||
    die "cannot write on $SRC_P"
B2=$(backup_now "$CONF" | jq -r '.backup_id // ""' || true)
[ -n "$B2" ] && ok "second backup $B2" || fail "the second backup failed: $(tail -n 3 "$T_TMP/backup.err")"
got=""
for ((i = 0; i < 60; i++)); do
    got=$("$REEVE" backups list demo/kvsrc --server "$R_URL" --json 2>/dev/null |
        jq -r '[.backups[]? | select(.status == "succeeded" and .method == "mariabackup")] | length' || true)
    [ "$got" = 2 ] && break
    sleep 1
done
assert_eq 2 "$got" "reeve backups list demo/kvsrc: two succeeded mariabackup backups"
run "$REEVE" backups verify "$B1" --server "$R_URL"
assert_rc 0 "reeve backups verify $B1"

# --- 3. restore the first backup as a new cluster ----------------------------------------
say "3. demo/kvdst from backup $B1"
spec kvdst "  bootstrap:
    fromBackup: {cluster: demo/kvsrc, backupId: \"$B1\"}"
M2=$(commit_push "demo/kvdst: demo/kvsrc as of $B1")
wait_apply "$M2" "demo/kvdst restored" || true
DST_P=$(wait_primary kvdst)
if [ -n "$DST_P" ]; then
    assert_eq "$SUM1" "$(rows_sum "$DST_P")" "demo/kvdst holds exactly the rows of the first backup"
    mdb_on "$DST_P" "INSERT INTO app.t VALUES (9999, 'after the restore')" >/dev/null
    assert_eq 1 "$(mdb_on "$DST_P" "SELECT COUNT(*) FROM app.t WHERE id = 9999")" "demo/kvdst takes writes"
else
    fail "demo/kvdst has no healthy primary"
fi

# --- 4. no clear text ----------------------------------------------------------------------
if grep -rqa "kv-secret-row" "$BK/kvsrc"; then
    fail "a backup file holds clear text of the rows"
else
    ok "the backup files hold no clear text (encrypted)"
fi
if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
