#!/usr/bin/env bash
# t0800-backups-api: the reconciler's side of backups through `reeve serve`
# and `reeve backups`, without PostgreSQL:
#
#   1. two clusters are applied with the test provider: payments/billing-old
#      backs up to a local directory, encrypted with a key from reeve.yaml;
#      payments/billing bootstraps from it at a point in time (with an
#      offset). Agent tokens for one node of each are put into dcs.db.
#   2. GET /v1/agents/config: the source's policy carries the key from
#      reeve.yaml; the target cannot be restored yet (no backup), and says so.
#   3. POST /v1/agents/backups: records, their log lines and the WAL
#      position are accepted (a line of a backup reeve does not know is not
#      stored); bad types and levels are 400 with the reason; a record of
#      another cluster is 403; no token is 401. Log lines never reach
#      reeve's own log.
#   4. the target's configuration now names the backup to restore and the
#      point in time in UTC.
#   5. `reeve backups list` prints the table (newest first, the failed one
#      explained); --json and a cluster filter; `reeve backups verify` of a
#      backup whose object is missing exits 1 and the list shows it failed;
#      an unknown id exits 2. `reeve backups show` prints a record's fields
#      and its log lines (also those sent after the record), --json too; an
#      unknown id exits 2.
#   6. an apply whose spec names S3 credentials reeve.yaml lacks fails with
#      a reeve/apply status naming the cluster, the field and the name (the
#      status is seen in the log of a forge-less reeve).
#
# Bounded: every wait has a deadline (T0800_WAIT seconds, default 30).
. "$(dirname "$0")/lib.sh"
need_cmd curl jq python3 sqlite3 sha256sum
WAIT=${T0800_WAIT:-30}
. "$(dirname "$0")/serve.sh"
"$REEVE" backups --help >/dev/null 2>&1 || die "this build has no 'reeve backups'"

KEY=$(printf 'reeve-t0800-key' | sha256sum | cut -c1-64)
export RV_T0800_KEY=$KEY
mkdir -p "$D/dest"

# --- the spec repository ------------------------------------------------
mkdir -p "$D/specs/clusters/payments"
cat >"$D/specs/clusters/payments/billing-old.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: billing-old
  namespace: payments
spec:
  engine: postgresql
  version: "16"
  provider: local
  backup:
    schedule:
      full: "0 2 * * *"
    retention:
      days: 14
    destination:
      local:
        path: $D/dest
    encryption:
      keyRef: backup-key
  pitr:
    enabled: true
EOF
cat >"$D/specs/clusters/payments/billing.yaml" <<'EOF'
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: billing
  namespace: payments
spec:
  engine: postgresql
  version: "16"
  provider: local
  bootstrap:
    fromBackup:
      cluster: payments/billing-old
      pointInTime: "2026-11-20T14:00:00+01:00"
EOF
specs_commit "two clusters"

serve_config
cat >>"$D/reeve.yaml" <<EOF
backupKeys:
  backup-key:
    secretRef: env:RV_T0800_KEY
EOF

# --- agent tokens: put straight into the DCS while reeve is stopped ------
start_reeve
wait_healthy || die "reeve serve did not answer /healthz within ${WAIT}s"
stop_all
TOK_OLD=$(printf 'agent-old' | sha256sum | cut -c1-64)
TOK_NEW=$(printf 'agent-new' | sha256sum | cut -c1-64)
add_agent_token "$TOK_OLD" payments billing-old billing-old-0
add_agent_token "$TOK_NEW" payments billing billing-0
start_reeve
say "reeve serve at $R"

agent() { # TOKEN METHOD PATH [BODY] -> $CODE, $BODY
    local args=(-s --max-time 10 -o "$D/.body" -w '%{http_code}' -X "$2")
    [ -n "$1" ] && args+=(-H "Authorization: Bearer $1")
    [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    CODE=$(curl "${args[@]}" "$R$3" || echo 000)
    BODY=$(cat "$D/.body" 2>/dev/null || true)
}

# --- 2. configurations ---------------------------------------------------
for ((i = 0; i < WAIT * 4; i++)); do
    agent "$TOK_OLD" GET /v1/agents/config
    [ "$CODE" = 200 ] && break
    sleep 0.25
done
assert_eq 200 "$CODE" "the source's configuration is served once its spec is applied"
assert_eq "$KEY" "$(jq -r .backup.encryption_key <<<"$BODY")" "it carries the key from reeve.yaml"
assert_eq "local $D/dest" "$(jq -r '.backup.destination | "\(.kind) \(.path)"' <<<"$BODY")" \
    "and the destination of the spec"
assert_eq "true 14 0 2 * * *" "$(jq -r '"\(.backup.pitr) \(.backup.retention_days) \(.backup.full_cron)"' <<<"$BODY")" \
    "and the policy (pitr, retention, schedule)"
assert_eq 64 "$(jq -r '.digest | length' <<<"$BODY")" "and a digest"
if grep -q "$KEY" "$D/reeve.log" "$D/data/state.db" 2>/dev/null; then
    fail "the key appears in the log or in state.db"
else
    ok "the key appears neither in the log nor in state.db"
fi

agent "$TOK_NEW" GET /v1/agents/config
assert_eq 409 "$CODE" "the target cannot be restored before its source has a backup"
assert_eq "no succeeded backup of payments/billing-old is known; take one first (its agents back up on schedule), or bootstrap with initdb" \
    "$(jq -r .error <<<"$BODY")" "and says why"
agent "" GET /v1/agents/config
assert_eq 401 "$CODE" "no token: 401"

# --- 3. records ----------------------------------------------------------
rec() { # ID STATUS STARTED ENDED [EXTRA_JQ]
    jq -nc --arg id "$1" --arg st "$2" --arg s "$3" --arg e "$4" '{
        backup_id: $id, set_id: $id, cluster: "payments/billing-old", node: "billing-old-0",
        type: "full", method: "pg_basebackup", params: [], schedule: "scheduled",
        status: $st, error: (if $st == "failed" then "pg_basebackup: could not connect" else null end),
        started_at: $s, ended_at: $e, duration_ms: 754000,
        location: ("file:///backups/base/" + $id + "/data"), name: ("base/" + $id + "/data"),
        size: 1610612736, raw_size: 4294967296,
        checksum: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        encrypted: true, compression: "zstd", retention_days: 14, schemas: [],
        start_lsn: "0/2000028", end_lsn: "0/3000100", timeline: 1, verify: null}'
}
R1=$(rec 20261120T090000Z-00000001 succeeded 2026-11-20T09:00:00.000Z 2026-11-20T09:12:34.000Z)
R2=$(rec 20261120T120000Z-00000002 succeeded 2026-11-20T12:00:00.000Z 2026-11-20T12:12:34.000Z)
R3=$(rec 20261120T140000Z-00000003 failed 2026-11-20T14:00:00.000Z 2026-11-20T14:00:05.000Z)
WALJ='{"last_segment":"000000010000000000000010","last_archived_at":"2026-11-20T13:30:00.000Z"}'
line() { # ID AT LEVEL TEXT
    jq -nc --arg id "$1" --arg at "$2" --arg lv "$3" --arg l "$4" \
        '{backup_id: $id, at: $at, level: $lv, line: $l}'
}
L1=$(line 20261120T140000Z-00000003 2026-11-20T14:00:00.120Z info "started (pg_basebackup, scheduled)")
L2=$(line 20261120T140000Z-00000003 2026-11-20T14:00:05.000Z error "pg_basebackup: could not connect to server: No such file or directory")
LX=$(line 20261119T000000Z-0000ffff 2026-11-19T00:00:00.000Z info "a backup reeve never heard of")
agent "$TOK_OLD" POST /v1/agents/backups "{\"records\":[$R1,$R2,$R3],\"logs\":[$L1,$L2,$LX],\"wal\":$WALJ}"
assert_eq '200 {"accepted":3,"logs_accepted":2}' "$CODE $BODY" \
    "three records, the log lines of a known backup and the WAL position are accepted"
L3=$(line 20261120T140000Z-00000003 2026-11-20T14:00:06.000Z warn "failure notification: exit status 3")
agent "$TOK_OLD" POST /v1/agents/backups "{\"records\":[],\"logs\":[$L3,$L2]}"
assert_eq '200 {"accepted":0,"logs_accepted":1}' "$CODE $BODY" \
    "a later line of a stored record is accepted alone; one sent again is stored once"
agent "$TOK_OLD" POST /v1/agents/backups "{\"records\":[],\"logs\":[$(jq -c '.level = "notice"' <<<"$L3")]}"
assert_eq "400 logs[0]: field 'level' must be one of debug, info, warn, error" \
    "$CODE $(jq -r .error <<<"$BODY")" "a log line with an unknown level is 400 with the reason"
agent "$TOK_NEW" POST /v1/agents/backups "{\"records\":[],\"logs\":[$(jq -c '.line = "forged"' <<<"$L3")]}"
assert_eq '200 {"accepted":0,"logs_accepted":0}' "$CODE $BODY" \
    "an agent of another cluster cannot add lines to this cluster's backup"
if grep -q "could not connect to server: No such file\|failure notification: exit status 3" "$D/reeve.log"; then
    fail "a log line appears in reeve's own log"
else
    ok "log lines are stored, not logged"
fi
agent "$TOK_OLD" POST /v1/agents/backups "{\"records\":[$(jq -c '.size = "big"' <<<"$R1")]}"
assert_eq "400 records[0]: field 'size' must be a non-negative integer or null" \
    "$CODE $(jq -r .error <<<"$BODY")" "a string size is 400 with the reason"
agent "$TOK_OLD" POST /v1/agents/backups "{\"records\":[$(jq -c '.cluster = "payments/billing"' <<<"$R1")]}"
assert_eq 403 "$CODE" "a record of another cluster is 403"
agent "$TOK_OLD" POST /v1/agents/backups '{"records":[' 
assert_eq 400 "$CODE" "a body that is not JSON is 400"

# --- 4. the restore ------------------------------------------------------
agent "$TOK_NEW" GET /v1/agents/config
assert_eq 200 "$CODE" "the target's configuration is served now"
assert_eq "payments/billing-old 20261120T120000Z-00000002 2026-11-20T13:00:00.000Z $KEY $D/dest" \
    "$(jq -r '.restore | "\(.source_cluster) \(.backup_id) \(.point_in_time) \(.encryption_key) \(.destination.path)"' <<<"$BODY")" \
    "the restore names the newest backup before the point in time, in UTC"

# --- 5. the CLI ----------------------------------------------------------
run "$REEVE" backups list --server "$R"
assert_rc 0 "reeve backups list"
diff_text "ID                         CLUSTER               TYPE  STATUS     STARTED               DURATION  SIZE     NODE           VERIFIED
20261120T140000Z-00000003  payments/billing-old  full  failed     2026-11-20 14:00:00Z  12m34s    1.5 GiB  billing-old-0  -
20261120T120000Z-00000002  payments/billing-old  full  succeeded  2026-11-20 12:00:00Z  12m34s    1.5 GiB  billing-old-0  -
20261120T090000Z-00000001  payments/billing-old  full  succeeded  2026-11-20 09:00:00Z  12m34s    1.5 GiB  billing-old-0  -

problems:
  20261120T140000Z-00000003: backup failed: pg_basebackup: could not connect" "$RUN_OUT" \
    "the table lists every backup newest first and explains the failed one"
run "$REEVE" backups list payments/billing --server "$R"
assert_eq "no backups of payments/billing are known to reeve yet" "$RUN_OUT" "a cluster filter"
run "$REEVE" backups list payments/billing-old --server "$R" --json
assert_eq 3 "$(jq '.backups | length' <<<"$RUN_OUT")" "--json gives the server's list"
run "$REEVE" backups verify 20261120T120000Z-00000002 --server "$R"
assert_rc 1 "verify of a backup whose object is missing"
assert_eq "backup 20261120T120000Z-00000002 of payments/billing-old: FAILED: object 'base/20261120T120000Z-00000002/data' is missing from the destination" \
    "$RUN_OUT" "and it says why"
run "$REEVE" backups list payments/billing-old --server "$R" --json
assert_eq "failed checksum" "$(jq -r '.backups[1].verify | "\(.status) \(.kind)"' <<<"$RUN_OUT")" \
    "the verdict is recorded"
run "$REEVE" backups verify 20261120T999999Z-nope --server "$R"
assert_rc 2 "verify of an unknown id"
run "$REEVE" backups show 20261120T140000Z-00000003 --server "$R"
assert_rc 0 "reeve backups show"
assert_eq "status          failed" "$(grep '^status ' <<<"$RUN_OUT")" "show prints the record's fields"
assert_eq "error           pg_basebackup: could not connect" "$(grep '^error ' <<<"$RUN_OUT")" \
    "and its error"
diff_text "log (3 lines):
2026-11-20 14:00:00.120Z  info   started (pg_basebackup, scheduled)
2026-11-20 14:00:05.000Z  error  pg_basebackup: could not connect to server: No such file or directory
2026-11-20 14:00:06.000Z  warn   failure notification: exit status 3" "$(sed -n '/^log /,$p' <<<"$RUN_OUT")" \
    "show prints the log lines the agent sent, oldest first"
run "$REEVE" backups show 20261120T140000Z-00000003 --server "$R" --json
assert_eq "3 failed" "$(jq -r '"\(.logs | length) \(.record.status)"' <<<"$RUN_OUT")" \
    "show --json gives the record and its lines"
run "$REEVE" backups show 20261120T120000Z-00000002 --server "$R"
assert_eq "log: no lines yet (the agent sends them with its records)" "$(tail -n 1 <<<"$RUN_OUT")" \
    "a backup without lines says so"
run "$REEVE" backups show 20261120T999999Z-nope --server "$R"
assert_rc 2 "show of an unknown id"
assert_eq 1 "$(grep -c "no backup '20261120T999999Z-nope' is known to reeve" <<<"$RUN_ERR")" \
    "and it says so"
run "$REEVE" backups list --server http://127.0.0.1:1
assert_rc 2 "an unreachable server"
run "$REEVE" backups frobnicate
assert_rc 2 "an unknown verb"

# --- 6. a spec that names credentials reeve.yaml lacks ---------------------
cat >"$D/specs/clusters/payments/ledger.yaml" <<'EOF'
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: ledger
  namespace: payments
spec:
  engine: postgresql
  version: "16"
  provider: local
  backup:
    schedule:
      full: "0 2 * * *"
    destination:
      s3:
        bucket: backups
        endpoint: http://127.0.0.1:9000
        credentialsRef: s3-main
EOF
specs_commit "ledger backs up to S3"
found=
for ((i = 0; i < WAIT * 4; i++)); do
    if grep -q "not applied: clusters/payments/ledger.yaml:10: cluster payments/ledger names credentials 's3-main' in backup.destination.s3.credentialsRef, and reeve.yaml has no such entry" "$D/reeve.log"; then
        found=1
        break
    fi
    sleep 0.25
done
if [ -n "$found" ]; then
    ok "the apply fails, naming the cluster, the field and the missing credentials"
else
    fail "no apply failure about 's3-main' in the log: $(grep -i 'apply' "$D/reeve.log" | tail -n 3 | tr '\n' '|')"
fi

t_done
