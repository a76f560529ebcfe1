#!/usr/bin/env bash
# t0640-maintenance-window: a disruptive change waits for the cluster's
# maintenance window, on real PostgreSQL through `reeve serve` and the
# `local` provider (harness: apply.sh; docs/maintenance.md).
#
#   1. demo/win (1 instance) with a window that is closed now (it opens in
#      about two hours, UTC): reeve/apply success (creating is not
#      disruptive)
#   2. max_connections changed (a restart): reeve/apply stays pending and
#      says "waiting for maintenance window <window>", and the server is not
#      restarted while it waits
#   3. the window moved to include now: reeve/apply success on that commit,
#      the server restarted once and runs the new value
#
# Needs root and PostgreSQL 15. Bounded: T0640_APPLY seconds per apply
# (default 120), T0640_BUDGET for the run (default 300).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
APPLY=${T0640_APPLY:-120}
PER_CLUSTER=2
BUDGET=${T0640_BUDGET:-300}
REEVE_YAML_EXTRA=""
. "$(dirname "$0")/apply.sh"

# A window of one hour starting HOURS from now (UTC), as "Daily HH:00-HH:00".
window_in() {
    local a b
    a=$(date -u -d "+$1 hour" +%H)
    b=$(date -u -d "+$(($1 + 1)) hour" +%H)
    echo "Daily $a:00-$b:00"
}
# commit_win WINDOW PARAMS MESSAGE: the spec, then commit and push
commit_win() {
    mkdir -p "$W/clusters/demo"
    cat >"$W/clusters/demo/win.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata: {name: win, namespace: demo}
spec:
  engine: postgresql
  version: "15"
  provider: local
  region: local
  instances: 1
  resources: {cpu: 1, memoryMiB: 256, storageGiB: 1}
  maintenance: {window: "$1"}
  deletionProtection: false
$2
EOF
    git -C "$W" add -A
    git -C "$W" commit -q -m "$3"
    git -C "$W" push -q origin main
    git -C "$W" rev-parse HEAD
}
primary() {
    status_json | jq -r '[.clusters[]? | select(.name == "win") | .nodes[]? |
        select(.healthy and .role == "primary") | .name] | first // ""'
}
started_at() { psql_on "$1" "SELECT pg_postmaster_start_time()"; }

say "reeve serve on $R_URL, instances under $ROOT"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"

# --- 1. a cluster whose window is closed now ------------------------------------
CLOSED=$(window_in 2)
say "1. demo/win with the window '$CLOSED' (closed now: $(date -u +%H:%M) UTC)"
M1=$(commit_win "$CLOSED" "" "demo/win")
wait_apply "$M1" "demo/win created outside its window" || true
P=""
for ((i = 0; i < 60; i++)); do P=$(primary); [ -n "$P" ] && break; sleep 1; done
[ -n "$P" ] || die "demo/win has no healthy primary"
T0=$(started_at "$P")

# --- 2. a restart waits for the window -------------------------------------------
say "2. max_connections 100 -> 120: a restart, outside the window"
M2=$(commit_win "$CLOSED" "  parameters: {max_connections: \"120\"}" "demo/win: max_connections 120")
desc=""
for ((i = 0; i < 60; i++)); do
    desc=$(python3 "$FAKEQ" "$F_URL" list --sha "$M2" |
        jq -r 'select(.context == "reeve/apply") | "\(.state) \(.description)"' | tail -n 1)
    [[ $desc == *"waiting for maintenance window"* ]] && break
    sleep 1
done
if [[ $desc == "pending "*"waiting for maintenance window $CLOSED"* ]]; then
    ok "reeve/apply is pending: ${desc#pending }"
else
    fail "reeve/apply should wait for the window '$CLOSED': '$desc'"
fi
sleep 3
assert_eq "$T0" "$(started_at "$P")" "the server was not restarted outside the window"
assert_eq 100 "$(psql_on "$P" "SHOW max_connections")" "max_connections is still 100"

# --- 3. the window opens ------------------------------------------------------------
OPEN="Daily $(date -u -d '-1 hour' +%H):00-$(date -u -d '+2 hour' +%H):00"
say "3. the window moved to '$OPEN' (open now)"
M3=$(commit_win "$OPEN" "  parameters: {max_connections: \"120\"}" "demo/win: window now")
wait_apply "$M3" "inside the window" || true
P=$(primary)
[ -n "$P" ] && assert_eq 120 "$(psql_on "$P" "SHOW max_connections")" "max_connections is 120 after the restart"
[ -n "$P" ] && [ "$(started_at "$P")" != "$T0" ] && ok "the server was restarted inside the window" ||
    fail "the server was not restarted inside the window"

if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
