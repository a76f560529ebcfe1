#!/usr/bin/env bash
# t0600-apply-postgresql: merges applied for real. `reeve serve` follows a
# bare spec repository (pollInterval 1), posts reeve/apply to the strict fake
# GitHub (tests/fakeforge), and runs PostgreSQL 15 through the `local`
# provider (reeve-provider-local: a directory, a loopback address 127.0.X.y
# and a reeve-agent per instance, servers run as postgres; X is picked at
# random among free networks, never the demo's 127.0.100).
#
#   1. demo/shop with 3 instances merged: reeve/apply pending, then success
#      on the merge commit; 1 primary + 2 streaming replicas in
#      `reeve status`; 3 instance directories; a row written on the primary
#      is read on both replicas
#   2. the agent API: no token and a wrong token are 401, a malformed report
#      with a real agent token is 400
#   3. scale 3 -> 5, kill -9 reeve as soon as the first new instance
#      exists, start it again: apply success, exactly 5 instance
#      directories, 5 distinct nodes, one primary holding the row (a
#      replica may have been promoted while reeve, the DCS, was down)
#   4. scale 5 -> 2: apply success, the primary stays, its data too; then
#      2 -> 3, which re-creates a node name removed by the scale-in: a new
#      instance, streaming
#   5. delete the spec (deletionProtection false, no backup): apply
#      success, every instance directory, agent and server gone
#
# Needs root (servers run as the postgres user) and PostgreSQL 15. Every
# wait is bounded: T0600_APPLY seconds per apply (default 120), T0600_BUDGET
# for the whole run (default 480, so the cleanup runs before ctest's 600 s
# timeout). Everything started is stopped on exit, agents and servers
# included (found by the temporary directory in their command lines).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
APPLY=${T0600_APPLY:-120}
# Two actions at a time per cluster (reeve's default): instances start
# together and any of them may win the bootstrap race; the apply must
# converge whichever does.
PER_CLUSTER=${T0600_PER_CLUSTER:-2}
BUDGET=${T0600_BUDGET:-480}   # seconds for the whole run: stop (and clean up) before ctest's 600
. "$(dirname "$0")/apply.sh"

shop_summary() {
    status_json | jq -r '[.clusters[]? | select(.namespace == "demo" and .name == "shop")] | first // {} |
        "\(.nodes // [] | length) \([.nodes[]? | select(.healthy and .role == "primary")] | length) \([.nodes[]? | select(.healthy and .role == "replica" and .streaming)] | length) \([.nodes[]? | select(.role == "primary") | .name] | first // "-")"'
}
instance_dirs() { find "$ROOT/instances" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l | tr -d ' '; }

# commit_spec N|delete MESSAGE: change main, push; prints the new commit
commit_spec() {
    mkdir -p "$W/clusters/demo"
    if [ "$1" = delete ]; then
        git -C "$W" rm -q "clusters/demo/shop.yaml"
    else
        sed "s/^  instances: [0-9]*\$/  instances: $1/" "$SRC/examples/demo/clusters/demo/shop.yaml" \
            >"$W/clusters/demo/shop.yaml"
        git -C "$W" add -A
    fi
    git -C "$W" commit -q -m "$2"
    git -C "$W" push -q origin main
    git -C "$W" rev-parse HEAD
}

# wait_apply SHA WHAT: reeve/apply on SHA reaches a final state (bounded);
wait_shape() {
    local want="$1 1 $2" got i
    for ((i = 0; i < 60; i++)); do
        got=$(shop_summary)
        [ "${got% *}" = "$want" ] && break
        sleep 1
    done
    assert_eq "$want" "${got% *}" "$3: reeve status: nodes, healthy primaries, streaming replicas"
    PRIMARY=${got##* }
}

# --- 0. reeve status before anything runs, then start ---------------------
run "$REEVE" status --server "$R_URL"
assert_rc 1 "reeve status with no server"
if [[ $RUN_ERR == *"cannot reach reeve at $R_URL"* ]]; then ok "it says it cannot reach reeve"; else fail "reeve status, no server: '$RUN_ERR'"; fi
run "$REEVE" status not-a-cluster-name
assert_rc 2 "reeve status with a bad cluster name"
run "$REEVE" status --help
assert_rc 0 "reeve status --help"
say "reeve serve on $R_URL, fake GitHub on $F_URL, instances under $ROOT"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"
ok "reeve serve is up with the local provider"

# --- 1. three instances -----------------------------------------------------
say "1. demo/shop with 3 instances"
M1=$(commit_spec 3 "demo/shop: 3 instances")
wait_apply "$M1" "3 instances" || true
wait_shape 3 2 "3 instances"
assert_eq 3 "$(instance_dirs)" "3 instances: instance directories under \$REEVE_LOCAL_ROOT/instances"
P0=$PRIMARY
run "$REEVE" status demo/shop -c "$T_TMP/reeve.yaml"
if [ "$RUN_RC" -eq 0 ] && grep -q "^demo/shop  postgresql 15  instances: 3 desired" <<<"$RUN_OUT" &&
    grep -q "^  $P0 *primary" <<<"$RUN_OUT" && grep -q "apply: success" <<<"$RUN_OUT"; then
    ok "reeve status demo/shop -c reeve.yaml: the cluster, its primary $P0, apply success"
else
    fail "reeve status demo/shop -c reeve.yaml (exit $RUN_RC): $RUN_OUT $RUN_ERR"
fi
run "$REEVE" status demo/nope --server "$R_URL"
assert_rc 1 "reeve status of an unknown cluster"

out=$(psql_on "$P0" "CREATE TABLE t0600 (v text); INSERT INTO t0600 VALUES ('written on $P0')" || true)
if [[ $out == *"INSERT 0 1"* || -z $out ]]; then
    ok "a row written on the primary $P0"
else
    fail "writing on the primary $P0: $out"
fi
for r in $(status_json | jq -r '.clusters[] | select(.name == "shop") | .nodes[] | select(.role == "replica") | .name'); do
    got=""
    for ((i = 0; i < 100; i++)); do
        got=$(psql_on "$r" "SELECT v FROM t0600" 2>/dev/null || true)
        [ "$got" = "written on $P0" ] && break
        sleep 0.2
    done
    assert_eq "written on $P0" "$got" "the row is read on the replica $r"
    assert_eq t "$(psql_on "$r" "SELECT pg_is_in_recovery()")" "$r is a standby"
done

# --- 2. the agent API refuses bad tokens and malformed reports -------------
say "2. the agent API"
code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"role":"primary","healthy":true}' "$R_URL/v1/agents/report" || true)
assert_eq 401 "$code" "a report without a token is refused"
code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $(printf '0%.0s' {1..64})" \
    -d '{"role":"primary","healthy":true}' "$R_URL/v1/agents/report" || true)
assert_eq 401 "$code" "a report with a wrong token is refused"
tokfile=$(find "$ROOT/instances" -name agent-token -type f 2>/dev/null | head -n 1)
if [ -n "$tokfile" ]; then
    tok=$(tr -d '\n' <"$tokfile")
    body=$(curl -s --max-time 5 -w ' %{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $tok" -d '{"role":"primary","healthy":"yes","lag_bytes":-5}' \
        "$R_URL/v1/agents/report" || true)
    if [[ $body == *" 400" ]]; then ok "a malformed report with a real agent token is 400: ${body% *}"; else fail "malformed report: expected 400, got '$body'"; fi
    body=$(curl -s --max-time 5 -w ' %{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $tok" -d '{"role":' "$R_URL/v1/agents/report" || true)
    if [[ $body == *" 400" ]]; then ok "a report that is not JSON is 400"; else fail "truncated report: expected 400, got '$body'"; fi
else
    fail "no agent-token file under $ROOT/instances (the agents' state directories)"
fi
wait_shape 3 2 "after the refused reports"

# --- 3. scale out, with a kill -9 in the middle ----------------------------
say "3. scale 3 -> 5, kill -9 reeve while it applies, start it again"
M2=$(commit_spec 5 "demo/shop: 5 instances")
for ((i = 0; i < 400; i++)); do   # until the apply has started to change things
    [ "$(instance_dirs)" -gt 3 ] && break
    sleep 0.05
done
say "instance directories when killed: $(instance_dirs)"
stop_reeve KILL || true
pids=$(pids_under provider-local)
# shellcheck disable=SC2086
[ -z "$pids" ] || wait_gone 10 $pids || true
if start_reeve; then ok "reeve serve restarts after kill -9"; else fail "reeve serve did not restart: $(tail -n 10 "$T_TMP/reeve.log" | tr '\n' '|')"; fi
wait_apply "$M2" "5 instances after kill -9" || true
wait_shape 5 4 "5 instances after kill -9"
assert_eq 5 "$(instance_dirs)" "5 instances after kill -9: exactly 5 instance directories (no duplicate)"
assert_eq 5 "$(status_json | jq -r '[.clusters[] | select(.name == "shop") | .nodes[].name] | unique | length')" \
    "5 instances after kill -9: 5 distinct nodes"
# The built-in DCS lives in reeve: while reeve is down the primary cannot
# renew its leader key and fences itself after ttlMs/2, so a replica may
# have been promoted on the restart. One primary, with the data, is what
# must hold.
if [ "$PRIMARY" = "$P0" ]; then
    ok "5 instances after kill -9: the primary is still $P0"
else
    say "the restart of reeve outlasted the leader key: $PRIMARY was promoted in place of $P0"
    P0=$PRIMARY
fi
assert_eq "written on shop" "$(psql_on "$P0" "SELECT v FROM t0600" | cut -c1-15)" \
    "5 instances after kill -9: the row is on the primary $P0"

# --- 4. scale in --------------------------------------------------------------
say "4. scale 5 -> 2"
M3=$(commit_spec 2 "demo/shop: 2 instances")
wait_apply "$M3" "2 instances" || true
wait_shape 2 1 "2 instances"
assert_eq 2 "$(instance_dirs)" "2 instances: instance directories"
assert_eq "$P0" "$PRIMARY" "2 instances: scale-in kept the primary $P0"
assert_eq "written on shop" "$(psql_on "$P0" "SELECT v FROM t0600" | cut -c1-15)" \
    "2 instances: the data is still on the primary"

say "4b. scale 2 -> 3: the new node takes a name the scale-in freed"
M3B=$(commit_spec 3 "demo/shop: 3 instances again")
wait_apply "$M3B" "3 instances again" || true
wait_shape 3 2 "3 instances again"
assert_eq 3 "$(instance_dirs)" "3 instances again: instance directories"

# --- 5. delete the cluster -----------------------------------------------------
# No backup section, so the plan takes no final backup and says so.
if [ "${T0600_DELETE:-1}" = 1 ]; then
    say "5. delete demo/shop"
    M4=$(commit_spec delete "demo/shop: delete")
    wait_apply "$M4" "delete" || true
    for ((i = 0; i < 60; i++)); do [ "$(instance_dirs)" = 0 ] && break; sleep 1; done
    assert_eq 0 "$(instance_dirs)" "delete: no instance directory left"
    for ((i = 0; i < 100; i++)); do
        [ -z "$(pids_under reeve-agent)$(pids_under bin/postgres)" ] && break
        sleep 0.2
    done
    left=$(pids_under reeve-agent; pids_under bin/postgres)
    what=""
    for pid in $left; do what="$what [$pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-120)]"; done
    assert_eq "" "$what" "delete: no agent and no server left running"
    for ((i = 0; i < 30; i++)); do
        n=$(status_json | jq -r '[.clusters[]? | select(.name == "shop") | .nodes[]?] | length')
        [ "$n" = 0 ] && break
        sleep 1
    done
    assert_eq 0 "$n" "delete: reeve status shows no node of demo/shop"
fi

if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
if grep -qF "$TOKEN" "$T_TMP/reeve.log"; then fail "the forge token appears in reeve's log"; else ok "no secret in reeve's log"; fi
say "total: $((SECONDS - T_START)) s"
t_done
