#!/usr/bin/env bash
# t0610-apply-mariadb: a MariaDB 10.11 cluster applied for real through the
# GitOps loop (the harness of t0600: tests/integration/apply.sh; servers
# run as the mysql user through the `local` provider).
#
#   1. demo/kv (mariadb 10.11, 3 instances) merged: reeve/apply success; one
#      primary and two replicas in `reeve status` (engine mariadb, GTID
#      positions); replicas are read-only and replicating; a row written
#      on the primary is read on both replicas
#   2. failover: the replicas stop replicating, the primary takes one more
#      write ('lost'), then its agent dies (kill -9): the agent's watchdog
#      stops its mariadbd, a replica is promoted and takes writes, the
#      other follows it; at most one node is writable at any time
#   3. the old node comes back (its agent started again, as after a
#      reboot): its history diverged, so it is re-cloned (old data kept
#      aside), rejoins read-only replicating from the new primary, without
#      'lost' and with the rows written meanwhile; then kill -9 of the
#      primary's mariadbd alone: its agent restarts it in place (no
#      failover), still one writable node
#   4. delete the spec: every instance, agent and server gone
#
# Needs root and mariadb-server (scripts/deps.sh). Bounded waits:
# T0610_APPLY seconds per apply (default 120), T0610_BUDGET for the run
# (default 300). Everything started is stopped on exit.
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
need_cmd mariadb
[ -x /usr/sbin/mariadbd ] || die "mariadb-server is not installed (scripts/deps.sh)"
id mysql >/dev/null 2>&1 || die "no mysql user (mariadb-server creates it)"
APPLY=${T0610_APPLY:-120}
PER_CLUSTER=${T0610_PER_CLUSTER:-2}
BUDGET=${T0610_BUDGET:-300}
REEVE_YAML_EXTRA=""
. "$(dirname "$0")/apply.sh"

at_exit stop_mariadb

kv_summary() {
    status_json | jq -r '[.clusters[]? | select(.namespace == "demo" and .name == "kv")] | first // {} |
        "\(.nodes // [] | length) \([.nodes[]? | select(.healthy and .role == "primary")] | length) \([.nodes[]? | select(.healthy and .role == "replica" and .streaming)] | length) \([.nodes[]? | select(.role == "primary") | .name] | first // "-")"'
}
wait_kv() { # NODES REPLICAS WHAT [SECS]
    local want="$1 1 $2" got i
    for ((i = 0; i < ${4:-60}; i++)); do
        got=$(kv_summary)
        [ "${got% *}" = "$want" ] && break
        sleep 1
    done
    assert_eq "$want" "${got% *}" "$3: reeve status: nodes, healthy primaries, streaming replicas"
    PRIMARY=${got##* }
}
commit_kv() { # N|delete MESSAGE: prints the new commit
    mkdir -p "$W/clusters/demo"
    if [ "$1" = delete ]; then
        git -C "$W" rm -q clusters/demo/kv.yaml
    else
        cat >"$W/clusters/demo/kv.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: kv
  namespace: demo
spec:
  engine: mariadb
  version: "10.11"
  provider: local
  region: local
  instances: $1
  resources:
    cpu: 1
    memoryMiB: 256
    storageGiB: 1
  deletionProtection: false
EOF
        git -C "$W" add -A
    fi
    git -C "$W" commit -q -m "$2"
    git -C "$W" push -q origin main
    git -C "$W" rev-parse HEAD
}
slave_status() { # NODE FIELD...: those fields of SHOW SLAVE STATUS, space-separated
    local sock node=$1 f out=""
    shift
    sock=$(socket_of "$node")
    local st
    st=$(timeout 10 mariadb --no-defaults -S "$sock/mariadbd.sock" -u root -e 'SHOW SLAVE STATUS\G' 2>&1 || true)
    for f in "$@"; do out="$out$(awk -v k="$f:" '$1 == k {print $2}' <<<"$st") "; done
    echo "$out"
}
inst_of() { # NODE: the node's instance directory
    local f
    for f in "$ROOT"/instances/*/agent.json; do
        [ "$(jq -r '.node // ""' "$f" 2>/dev/null)" = "$1" ] && { dirname "$f"; return 0; }
    done
}
nodes_of() { status_json | jq -r '.clusters[]? | select(.name == "kv") | .nodes[].name' | sort; }
writable_count() { # how many of the given nodes answer with read_only = 0
    local n w=0
    for n in "$@"; do [ "$(mdb_on "$n" "SELECT @@read_only" 2>/dev/null)" = 0 ] && w=$((w + 1)); done
    echo "$w"
}
wait_row() { # NODE VALUE WHAT
    local got="" i
    for ((i = 0; i < 100; i++)); do
        got=$(mdb_on "$1" "SELECT v FROM app.t0610 WHERE v = '$2'" 2>/dev/null || true)
        [ "$got" = "$2" ] && break
        sleep 0.2
    done
    assert_eq "$2" "$got" "$3"
}

say "reeve serve on $R_URL, instances under $ROOT"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"

# --- 1. three instances ---------------------------------------------------------
say "1. demo/kv: mariadb 10.11, 3 instances"
M1=$(commit_kv 3 "demo/kv: 3 instances")
wait_apply "$M1" "3 instances" || true
wait_kv 3 2 "3 instances"
P0=$PRIMARY
engines=$(status_json | jq -r '[.clusters[] | select(.name == "kv") | .nodes[].engine] | unique | join(",")')
assert_eq mariadb "$engines" "reeve status: every node reports engine mariadb"
run "$REEVE" status demo/kv --server "$R_URL"
if [ "$RUN_RC" -eq 0 ] && grep -q "mariadb 10.11" <<<"$RUN_OUT" && grep -q "^  $P0 *primary" <<<"$RUN_OUT"; then
    ok "reeve status demo/kv: mariadb 10.11, primary $P0"
else
    fail "reeve status demo/kv (exit $RUN_RC): $RUN_OUT $RUN_ERR"
fi
pos=$(status_json | jq -r --arg p "$P0" '.clusters[] | select(.name == "kv") | .nodes[] | select(.name == $p) | .position // ""')
if [[ $pos =~ ^0-[0-9]+-[0-9]+$ ]]; then ok "the primary's position is a GTID ($pos)"; else fail "primary position: '$pos'"; fi
assert_eq 0 "$(mdb_on "$P0" "SELECT @@read_only")" "the primary $P0 is writable"
out=$(mdb_on "$P0" "CREATE DATABASE app; CREATE TABLE app.t0610 (v varchar(64) PRIMARY KEY) ENGINE=InnoDB; INSERT INTO app.t0610 VALUES ('one'); CREATE USER app@localhost IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO app@localhost")
assert_eq "" "$out" "a row written on the primary $P0"
REPLICAS=$(nodes_of | grep -vx "$P0" | tr '\n' ' ')
for r in $REPLICAS; do
    wait_row "$r" one "the row is read on the replica $r"
    assert_eq 1 "$(mdb_on "$r" "SELECT @@read_only")" "$r is read-only"
    assert_eq "Yes Yes " "$(slave_status "$r" Slave_IO_Running Slave_SQL_Running)" \
        "$r replicates (IO and SQL threads running)"
done
r1=${REPLICAS%% *}
out=$(timeout 10 mariadb --no-defaults -S "$(socket_of "$r1")/mariadbd.sock" -u app -papp-pw \
    -e "INSERT INTO app.t0610 VALUES ('nope')" 2>&1 || true)
if [[ $out == *"read-only"* || $out == *"READ ONLY"* || $out == *"--read-only"* ]]; then ok "a write on a replica is refused"; else fail "write on a replica: '$out'"; fi

# --- 2. failover -------------------------------------------------------------------
say "2. the primary's agent dies (kill -9), after a write the replicas never got"
for r in $REPLICAS; do mdb_on "$r" "STOP SLAVE" >/dev/null; done
assert_eq "" "$(mdb_on "$P0" "INSERT INTO app.t0610 VALUES ('lost')")" "a write on $P0 that no replica receives"
IDIR=$(inst_of "$P0")
[ -n "$IDIR" ] || die "no instance directory for $P0"
APID=$(tr -d '\n' <"$IDIR/agent.pid")
MPID=$(tr -d '\n' <"$IDIR/data/mariadbd.pid" 2>/dev/null || true)
t0=$SECONDS
kill -KILL "$APID" 2>/dev/null || true
if [ -n "$MPID" ] && wait_gone 10 "$MPID"; then
    ok "the dead agent's watchdog stopped $P0's mariadbd ($((SECONDS - t0)) s)"
else
    fail "$P0's mariadbd ($MPID) still runs 10 s after its agent died"
    kill -KILL "$MPID" 2>/dev/null || true
fi
NEW="" max_writable=0
for ((i = 0; i < 120; i++)); do
    # reeve status keeps the dead primary's last report until it expires,
    # so the servers themselves say who took over.
    w=0
    for r in $REPLICAS; do
        if [ "$(mdb_on "$r" "SELECT @@read_only" 2>/dev/null)" = 0 ]; then NEW=$r; w=$((w + 1)); fi
    done
    [ "$w" -gt "$max_writable" ] && max_writable=$w
    [ -n "$NEW" ] && break
    sleep 0.5
done
if [ -n "$NEW" ]; then ok "replica $NEW was promoted $((SECONDS - t0)) s after the kill"; else fail "no replica was promoted within 60 s ($(kv_summary))"; fi
assert_eq 1 "$max_writable" "at most one node was writable while polling during the failover"
NEW=${NEW:-none}
out=$(mdb_on "$NEW" "INSERT INTO app.t0610 VALUES ('two')")
assert_eq "" "$out" "the new primary $NEW takes writes"
OTHER=$(tr ' ' '\n' <<<"$REPLICAS" | grep -vx "$NEW" | grep -v '^$' | head -n 1)
[ -z "$OTHER" ] || wait_row "$OTHER" two "the other replica $OTHER follows $NEW"

# --- 3. the old node comes back ----------------------------------------------------
say "3. $P0 comes back (its agent started again): its history diverged ('lost')"
runuser -u mysql -- setsid "$AGENT" -c "$IDIR/agent.json" >>"$IDIR/agent.log" 2>&1 </dev/null &
for ((i = 0; i < 90; i++)); do
    [ "$(mdb_on "$P0" "SELECT @@read_only" 2>/dev/null)" = 1 ] &&
        [ "$(mdb_on "$P0" "SELECT v FROM app.t0610 WHERE v = 'two'" 2>/dev/null)" = two ] && break
    sleep 1
done
assert_eq 1 "$(mdb_on "$P0" "SELECT @@read_only")" "$P0 rejoined read-only"
wait_row "$P0" two "$P0 has the row written on $NEW while it was down"
assert_eq 0 "$(mdb_on "$P0" "SELECT COUNT(*) FROM app.t0610 WHERE v = 'lost'")" \
    "$P0 was re-cloned: the write only it had is gone"
if compgen -G "$IDIR/data.failed-*" >/dev/null; then ok "its old data directory is kept aside ($(basename "$(compgen -G "$IDIR/data.failed-*" | head -n 1)"))"; else fail "no $IDIR/data.failed-* kept"; fi
NEW_ADDR=$(jq -r '.engine.listen_address' "$(inst_of "$NEW")/agent.json")
for ((i = 0; i < 50; i++)); do # the copy is in before replication is set up
    io=$(slave_status "$P0" Slave_IO_Running Slave_SQL_Running Master_Host)
    [ "$io" = "Yes Yes $NEW_ADDR " ] && break
    sleep 0.2
done
assert_eq "Yes Yes $NEW_ADDR " "$io" "$P0 replicates from the new primary $NEW"
mdb_on "$NEW" "INSERT INTO app.t0610 VALUES ('three')" >/dev/null
wait_row "$P0" three "$P0 gets new rows from $NEW"
wait_kv 3 2 "after the rejoin"
# shellcheck disable=SC2046
assert_eq 1 "$(writable_count $(nodes_of))" "exactly one writable node after the rejoin"

say "3b. kill -9 of the primary's mariadbd alone: its agent restarts it in place"
MPID=$(tr -d '\n' <"$(inst_of "$NEW")/data/mariadbd.pid")
kill -KILL "$MPID"
for ((i = 0; i < 60; i++)); do
    [ "$(mdb_on "$NEW" "SELECT @@read_only" 2>/dev/null)" = 0 ] && break
    sleep 0.5
done
assert_eq 0 "$(mdb_on "$NEW" "SELECT @@read_only")" "$NEW is writable again after the restart"
assert_eq "" "$(mdb_on "$NEW" "INSERT INTO app.t0610 VALUES ('four')")" "$NEW takes writes again"
wait_row "$P0" four "the replicas follow the restarted primary"
# shellcheck disable=SC2046
assert_eq 1 "$(writable_count $(nodes_of))" "still exactly one writable node"
# The restarted agent is not the one the provider knows (its pid changed):
# stop it (fast shutdown, session revoked) so the delete finds nothing of
# the instance running that it cannot stop.
for p in $(pids_under "$IDIR/agent.json"); do kill -TERM "$p" 2>/dev/null || true; done
# shellcheck disable=SC2046
wait_gone 30 $(pids_under "$IDIR/agent.json") || true

# T0610_LOGS=DIR keeps a copy of the agents' logs (the run's directory goes).
[ -z "${T0610_LOGS:-}" ] || { mkdir -p "$T0610_LOGS"; for f in "$ROOT"/instances/*/agent.log; do cp "$f" "$T0610_LOGS/$(basename "$(dirname "$f")").log"; done; }
# --- 4. delete ------------------------------------------------------------------
say "4. delete demo/kv"
M2=$(commit_kv delete "demo/kv: delete")
wait_apply "$M2" "delete" || true
for ((i = 0; i < 60; i++)); do
    [ -z "$(find "$ROOT/instances" -mindepth 1 -maxdepth 1 -type d 2>/dev/null)" ] && break
    sleep 1
done
assert_eq 0 "$(find "$ROOT/instances" -mindepth 1 -maxdepth 1 -type d | wc -l | tr -d ' ')" "delete: no instance directory left"
for ((i = 0; i < 100; i++)); do
    [ -z "$(pids_under reeve-agent)$(pids_under mariadbd)" ] && break
    sleep 0.2
done
assert_eq "" "$(pids_under reeve-agent; pids_under mariadbd)" "delete: no agent and no mariadbd left running"
if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
