#!/usr/bin/env bash
# t0630-rolling-mariadb: day-2 changes of a running MariaDB 10.11 cluster,
# applied for real through `reeve serve` and the `local` provider
# (docs/day2.md "MariaDB", docs/users.md "MariaDB"). demo/kv runs 3
# instances; then, one merge each:
#
#   a. max_connections (dynamic in MariaDB): every node runs the new value,
#      no mariadbd restarted (pid and Uptime), the primary stays
#   b. innodb_log_buffer_size (static): every node runs it after a rolling
#      restart in this order: the two replicas one at a time, each healthy
#      and caught up before the next, the switchover, the old primary last;
#      the primary moved
#   c. users: kv_app (readwrite, env: password) and kv_ro (readonly) created
#      on the primary and replicated (login on a replica works); the password
#      hashed before it reached the binary log (mariadb-binlog shows no clear
#      password)
#   d. version "10.11" -> "11.4": the image catalog (REEVE_LOCAL_IMAGES) maps
#      both to the installed 10.11 binaries, so the upgrade is a restart of
#      each node on the catalog's other entry, replicas first, a switchover,
#      the old primary last; meanwhile a loop inserts a row at a time as
#      kv_app into whichever node takes writes: every acknowledged row is on
#      the new primary, the failures form one gap, whose length is printed
#   e. users again: kv_app's password changed (now a sealed: reference),
#      kv_ro dropped: the old password no longer logs in, the new one does,
#      kv_ro is gone from every node
#   f. memoryMiB 256 -> 512: every instance resized by the provider, every
#      node restarted with innodb_buffer_pool_size = 256M (half), rolling
#
# Needs root, mariadb-server and PostgreSQL 15 (the harness checks it).
# Bounded: T0630_APPLY seconds per apply (default 120), T0630_BUDGET for the
# whole run (default 330).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
need_cmd mariadb mariadb-binlog
[ -x /usr/sbin/mariadbd ] || die "mariadb-server is not installed (scripts/deps.sh)"
id mysql >/dev/null 2>&1 || die "no mysql user (mariadb-server creates it)"
APPLY=${T0630_APPLY:-120}
PER_CLUSTER=2
BUDGET=${T0630_BUDGET:-330}
REEVE_YAML_EXTRA=""
. "$(dirname "$0")/apply.sh"
ROLL_CLUSTER=kv

at_exit stop_mariadb

cat >"$T_TMP/images.json" <<EOF
{"mariadb": {"10.11": "/usr/bin", "11.4": "/usr/bin"}}
EOF
chmod 0644 "$T_TMP/images.json"
sed -i "s|REEVE_LOCAL_NET: \"$NET\"}|REEVE_LOCAL_NET: \"$NET\", REEVE_LOCAL_IMAGES: $T_TMP/images.json}|" \
    "$T_TMP/reeve.yaml"
grep -q REEVE_LOCAL_IMAGES "$T_TMP/reeve.yaml" || die "cannot add REEVE_LOCAL_IMAGES to reeve.yaml"
PW1=app-pw-$RANDOM$RANDOM
PW2=app-pw2-$RANDOM$RANDOM
PWRO=ro-pw-$RANDOM$RANDOM
export KV_APP_PASSWORD=$PW1 KV_RO_PASSWORD=$PWRO

# commit_kv VERSION MEMORY PARAMS USERS MESSAGE: the spec with these
# parameters ("name: value;...") and users (YAML flow items ";"-separated);
# prints the commit
commit_kv() {
    mkdir -p "$W/clusters/demo"
    cat >"$W/clusters/demo/kv.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: kv
  namespace: demo
spec:
  engine: mariadb
  version: "$1"
  provider: local
  region: local
  instances: 3
  resources:
    cpu: 1
    memoryMiB: $2
    storageGiB: 1
  deletionProtection: false
EOF
    if [ -n "$3" ]; then
        echo "  parameters:" >>"$W/clusters/demo/kv.yaml"
        tr ';' '\n' <<<"$3" | sed 's/^/    /' >>"$W/clusters/demo/kv.yaml"
    fi
    if [ -n "$4" ]; then
        echo "  users:" >>"$W/clusters/demo/kv.yaml"
        tr ';' '\n' <<<"$4" | sed 's/^/    - /' >>"$W/clusters/demo/kv.yaml"
    fi
    commit_push "$5"
}
kv_nodes() { status_json | jq -r '.clusters[]? | select(.name == "kv") | .nodes[].name' | sort; }
addr_of() { # NODE: "address port" from its agent.json
    local f
    for f in "$ROOT"/instances/*/agent.json; do
        [ "$(jq -r '.node // ""' "$f")" = "$1" ] && { jq -r '"\(.engine.listen_address) \(.engine.port)"' "$f"; return 0; }
    done
}
login() { # NODE USER PASSWORD [SQL]: over TCP as a client would; prints the rows or the error
    local a p
    read -r a p <<<"$(addr_of "$1")"
    timeout 10 mariadb --no-defaults -N -B -h "$a" -P "$p" -u "$2" "-p$3" -e "${4:-SELECT 1}" 2>&1 || true
}
inst_of() { # NODE: the node's instance directory
    local f
    for f in "$ROOT"/instances/*/agent.json; do
        [ "$(jq -r '.node // ""' "$f")" = "$1" ] && { dirname "$f"; return 0; }
    done
}
pids_now() { local n; for n in $(kv_nodes); do echo "$n $(cat "$(inst_of "$n")/data/mariadbd.pid" 2>/dev/null)"; done; }
show_all() { # VARIABLE: "node value" lines
    local n
    for n in $(kv_nodes); do echo "$n $(mdb_on "$n" "SELECT @@$1")"; done
}
wait_all() { # VARIABLE VALUE WHAT: every node runs it (bounded)
    local i want
    want=$(kv_nodes | sed "s/\$/ $2/")
    for ((i = 0; i < 30; i++)); do [ "$(show_all "$1")" = "$want" ] && break; sleep 0.5; done
    assert_eq "$want" "$(show_all "$1")" "$3"
}
[ -z "${T0630_KEEP:-}" ] || at_exit "keep_logs $(printf %q "$T0630_KEEP")"

start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"
ok "reeve serve is up; the image catalog offers mariadb 10.11 and 11.4"

say "demo/kv: mariadb 10.11, 3 instances"
M0=$(commit_kv 10.11 256 "" "" "demo/kv: 3 instances")
wait_apply "$M0" "3 instances" || die "the cluster did not come up"
wait_shape3 "3 instances"
P0=$(primary_now)

# --- a. dynamic --------------------------------------------------------------------
say "a. max_connections 151 -> 200: SET GLOBAL, no restart"
T_A=$(pids_now)
U_A=$(mdb_on "$P0" "SHOW GLOBAL STATUS LIKE 'Uptime'" | awk '{print $2}')
MA=$(commit_kv 10.11 256 "max_connections: \"200\"" "" "demo/kv: max_connections 200")
wait_apply "$MA" "max_connections" || true
wait_all max_connections 200 "a: every node runs max_connections = 200"
assert_eq "$T_A" "$(pids_now)" "a: no mariadbd restarted (pids unchanged)"
U_A2=$(mdb_on "$P0" "SHOW GLOBAL STATUS LIKE 'Uptime'" | awk '{print $2}')
[ "${U_A2:-0}" -ge "${U_A:-0}" ] && ok "a: the primary's Uptime went on ($U_A -> $U_A2 s)" || fail "a: Uptime $U_A -> $U_A2"
assert_eq "$P0" "$(primary_now)" "a: the primary is still $P0"
n=$(grep -c "^max_connections" "$(inst_of "$P0")/data/reeve-params.cnf" 2>/dev/null || true)
assert_eq 1 "$n" "a: kept in reeve-params.cnf for the next start"

# --- b. static ---------------------------------------------------------------------
say "b. innodb_log_buffer_size 16M -> 32M (static): a rolling restart"
T_B=$(pids_now)
SINCE=$(date -u +%FT%T.%3NZ)
PARAMS="max_connections: \"200\";innodb_log_buffer_size: \"32M\""
MB=$(commit_kv 10.11 256 "$PARAMS" "" "demo/kv: innodb_log_buffer_size 32M")
wait_apply "$MB" "innodb_log_buffer_size" || true
wait_shape3 "b: after the rolling restart"
wait_all innodb_log_buffer_size 33554432 "b: every node runs innodb_log_buffer_size = 32M"
changed=0
while read -r n p; do [ "$(cat "$(inst_of "$n")/data/mariadbd.pid" 2>/dev/null)" != "$p" ] && changed=$((changed + 1)); done <<<"$T_B"
assert_eq 3 "$changed" "b: every mariadbd restarted"
check_roll "$(order_of "$(events_since "$SINCE")")" "$P0" R "b"
P1=$(primary_now)
[ "$P1" != "$P0" ] && ok "b: the primary moved from $P0 to $P1" || fail "b: the primary is still $P0"
# shellcheck disable=SC2046
assert_eq "$P1 0" "$(for n in $(kv_nodes); do [ "$(mdb_on "$n" "SELECT @@read_only")" = 0 ] && echo "$n 0"; done)" \
    "b: only the new primary $P1 is writable"

# --- c. users ----------------------------------------------------------------------
say "c. users kv_app (readwrite) and kv_ro (readonly)"
USERS='{name: kv_app, roles: [readwrite], passwordRef: "env:KV_APP_PASSWORD"};{name: kv_ro, passwordRef: "env:KV_RO_PASSWORD"}'
MC=$(commit_kv 10.11 256 "$PARAMS" "$USERS" "demo/kv: users")
wait_apply "$MC" "users" || true
assert_eq "" "$(login "$P1" kv_app "$PW1" "CREATE TABLE kv.t0630 (id bigint PRIMARY KEY) ENGINE=InnoDB")" \
    "c: kv_app logs in on the primary and creates a table in kv"
R1=$(kv_nodes | grep -vx "$P1" | head -n 1)
for ((i = 0; i < 20; i++)); do [ "$(login "$R1" kv_ro "$PWRO" "SELECT COUNT(*) FROM kv.t0630")" = 0 ] && break; sleep 0.5; done
assert_eq 0 "$(login "$R1" kv_ro "$PWRO" "SELECT COUNT(*) FROM kv.t0630")" "c: kv_ro logs in on the replica $R1 and reads kv"
out=$(login "$P1" kv_ro "$PWRO" "INSERT INTO kv.t0630 VALUES (0)")
[[ $out == *denied* ]] && ok "c: kv_ro cannot write" || fail "c: kv_ro insert: '$out'"
out=$(login "$P1" kv_app "$PW1" "SELECT COUNT(*) FROM mysql.user")
[[ $out == *denied* ]] && ok "c: kv_app cannot read mysql.user" || fail "c: kv_app on mysql.user: '$out'"
assert_eq "kv_app kv_ro" "$(mdb_on "$R1" "SELECT name FROM reeve.managed_users ORDER BY name" | paste -sd' ')" \
    "c: both marked as reeve's in reeve.managed_users (replicated)"
bl=$(for f in "$(inst_of "$P1")"/data/binlog.[0-9]*; do mariadb-binlog --no-defaults "$f" 2>/dev/null; done)
grep -q "CREATE USER.*kv_app" <<<"$bl" && ok "c: the binary log has CREATE USER kv_app" || fail "c: no CREATE USER in the binary log"
if grep -q -e "$PW1" -e "$PWRO" <<<"$bl" "$(inst_of "$P1")/agent.log" "$T_TMP/reeve.log"; then
    fail "c: a clear password is in the binary log or a log"
else
    ok "c: no clear password in the binary log, the agent's log or reeve's log"
fi

# --- d. rolling upgrade under writes -----------------------------------------------
say "d. version 10.11 -> 11.4 while a loop writes as kv_app"
TARGETS=$(for n in $(kv_nodes); do addr_of "$n"; done | paste -sd' ' -)
cat >"$T_TMP/writer.sh" <<EOF
#!/bin/bash
# one INSERT per iteration into whichever server takes writes
i=0
while [ ! -e "$T_TMP/writer.stop" ]; do
    i=\$((i + 1))
    done_one=0
    set -- $TARGETS
    while [ \$# -ge 2 ]; do
        if mariadb --no-defaults -h "\$1" -P "\$2" -u kv_app "-p$PW1" --connect-timeout=2 \
            -e "INSERT INTO kv.t0630 VALUES (\$i)" 2>>"$T_TMP/writer.err"; then
            done_one=1
            break
        fi
        shift 2
    done
    if [ \$done_one = 1 ]; then echo "\$(date +%s%3N) ok \$i"; else echo "\$(date +%s%3N) fail \$i"; sleep 0.02; fi
done
EOF
chmod 0700 "$T_TMP/writer.sh"
rm -f "$T_TMP/writer.stop"
"$T_TMP/writer.sh" >"$T_TMP/writer.log" 2>&1 &
WRITER=$!
sleep 2
SINCE=$(date -u +%FT%T.%3NZ)
MD=$(commit_kv 11.4 256 "$PARAMS" "$USERS" "demo/kv: mariadb 11.4")
wait_apply "$MD" "version 11.4" || true
wait_shape3 "d: after the upgrade"
sleep 2
touch "$T_TMP/writer.stop"
wait "$WRITER" 2>/dev/null || true
EV=$(events_since "$SINCE")
check_roll "$(order_of "$EV")" "$P1" U "d"
assert_eq 11.4 "$(jq -r '[.instances[] | .version] | unique | join(",")' "$ROOT/state.json")" \
    "d: every instance runs the catalog's mariadb 11.4"
P2=$(primary_now)
[ "$P2" != "$P1" ] && ok "d: the primary moved from $P1 to $P2" || fail "d: the primary is still $P1"
oks=$(grep -c ' ok ' "$T_TMP/writer.log" || true)
[ "$oks" -gt 50 ] && ok "d: $oks inserts succeeded during the upgrade" || fail "d: only $oks inserts succeeded"
assert_eq "$oks" "$(mdb_on "$P2" "SELECT COUNT(*) FROM kv.t0630")" "d: every acknowledged insert is on the new primary $P2"
gap=$(awk '$2 == "fail" { if (!first) first = $1; last = $1; n++ }
           $2 == "ok" && first && !after && $1 > last { after = $1 }
           END { if (n) printf "%d %d %d %d", first, last, after, n; else print "0 0 0 0" }' "$T_TMP/writer.log")
read -r g_first g_last g_after g_n <<<"$gap"
okbetween=$(awk -v a="$g_first" -v b="$g_last" '$2 == "ok" && $1 > a && $1 < b' "$T_TMP/writer.log" | wc -l)
assert_eq 0 "$okbetween" "d: the failed inserts ($g_n) form a single gap"
assert_eq 0 "$(grep -c denied "$T_TMP/writer.err" || true)" \
    "d: kv_app never lost its grants (the new primary applies the users again without revoking first)"
sw_ms=$(grep "writes were unavailable for" <<<"$EV" | tail -n 1 | sed 's/.*unavailable for \([0-9]*\) ms.*/\1/')
if [ "$g_n" -gt 0 ]; then
    window=$((g_after - g_first))
    say "d: writes failed for ${window} ms (first failed insert to the next success); the agents measured ${sw_ms:-?} ms from read_only on the old primary to the promotion"
    [ "$window" -lt 10000 ] && ok "d: the write gap ($window ms) is under 10 s" || fail "d: the write gap lasted $window ms"
else
    ok "d: no insert failed (the agents measured ${sw_ms:-?} ms without writes)"
fi

# --- e. users changed ---------------------------------------------------------------
say "e. kv_app gets a new (sealed) password, kv_ro is dropped"
SEALED=$(printf '%s' "$PW2" | "$REEVE" seal --cluster demo/kv --key "$T_TMP/data/seal.pub") || die "reeve seal failed"
ME=$(commit_kv 11.4 256 "$PARAMS" "{name: kv_app, roles: [readwrite], passwordRef: \"$SEALED\"}" "demo/kv: kv_app rotated, kv_ro dropped")
wait_apply "$ME" "users changed" || true
R2=$(kv_nodes | grep -vx "$P2" | head -n 1)
for ((i = 0; i < 20; i++)); do [ "$(login "$R2" kv_app "$PW2")" = 1 ] && break; sleep 0.5; done
assert_eq 1 "$(login "$P2" kv_app "$PW2")" "e: kv_app logs in with the new password on the primary"
assert_eq 1 "$(login "$R2" kv_app "$PW2")" "e: and on the replica $R2"
out=$(login "$P2" kv_app "$PW1")
[[ $out == *denied* ]] && ok "e: the old password is refused" || fail "e: the old password: '$out'"
for n in $(kv_nodes); do
    assert_eq 0 "$(mdb_on "$n" "SELECT COUNT(*) FROM mysql.user WHERE User = 'kv_ro'")" "e: kv_ro is gone on $n"
done
assert_eq kv_app "$(mdb_on "$P2" "SELECT name FROM reeve.managed_users")" "e: only kv_app is still marked"
grep -q -e "$PW2" "$T_TMP/reeve.log" "$(inst_of "$P2")/agent.log" && fail "e: the new password is in a log" || ok "e: the new password is in no log"

# --- f. resize ----------------------------------------------------------------------
say "f. memoryMiB 256 -> 512: resize_instance, innodb_buffer_pool_size half of it, rolling"
P3=$(primary_now)
SINCE=$(date -u +%FT%T.%3NZ)
MF=$(commit_kv 11.4 512 "$PARAMS" "{name: kv_app, roles: [readwrite], passwordRef: \"$SEALED\"}" "demo/kv: 512 MiB")
wait_apply "$MF" "memoryMiB 512" || true
wait_shape3 "f: after the resize"
wait_all innodb_buffer_pool_size 268435456 "f: every node runs innodb_buffer_pool_size = 256M"
assert_eq 512 "$(jq -r '[.instances[] | .resources.memoryMiB] | unique | join(",")' "$ROOT/state.json")" \
    "f: the provider records 512 MiB for every instance"
check_roll "$(order_of "$(events_since "$SINCE")")" "$P3" R "f"

if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
