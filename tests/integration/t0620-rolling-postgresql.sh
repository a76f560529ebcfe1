#!/usr/bin/env bash
# t0620-rolling-postgresql: day-2 changes of a running PostgreSQL cluster,
# applied for real through `reeve serve` and the `local` provider
# (docs/day2.md). demo/shop runs 3 instances; then, one merge each:
#
#   a. work_mem (reloadable): reeve/apply success, every node shows the new
#      value, no server restarted (pg_postmaster_start_time unchanged), the
#      primary stays
#   b. max_connections (needs a restart): every node shows it, every server
#      restarted, in this order (from the agents' and reeve's logs): the two
#      replicas one at a time, each healthy and caught up before the next,
#      then the switchover (old primary stops writes, the target promotes),
#      then the old primary; the primary moved
#   c. version "15" -> "16": the image catalog (REEVE_LOCAL_IMAGES) maps
#      both to the installed PostgreSQL 15 binaries, so the upgrade is a
#      restart of each node on the catalog's other entry: replicas first, a
#      switchover, the old primary last; every instance reports 16
#   d. during c, a loop inserts a row a time into the current primary
#      (libpq target_session_attrs=read-write over all three sockets): no
#      insert fails outside the switchover, every acknowledged row is on the
#      new primary, and the length of the write gap is printed
#   e. memoryMiB 256 -> 512: every instance resized by the provider, every
#      node restarted with shared_buffers = 128MB (a quarter), in the same
#      rolling order
#
# Needs root and PostgreSQL 15. Bounded: T0620_APPLY seconds per apply
# (default 120), T0620_BUDGET for the whole run (default 330).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
APPLY=${T0620_APPLY:-120}
PER_CLUSTER=2
BUDGET=${T0620_BUDGET:-330}
REEVE_YAML_EXTRA=""
. "$(dirname "$0")/apply.sh"
ROLL_CLUSTER=shop

PGBIN=/usr/lib/postgresql/15/bin
cat >"$T_TMP/images.json" <<EOF
{"postgresql": {"15": "$PGBIN", "16": "$PGBIN"}}
EOF
chmod 0644 "$T_TMP/images.json"
sed -i "s|REEVE_LOCAL_NET: \"$NET\"}|REEVE_LOCAL_NET: \"$NET\", REEVE_LOCAL_IMAGES: $T_TMP/images.json}|" \
    "$T_TMP/reeve.yaml"
grep -q REEVE_LOCAL_IMAGES "$T_TMP/reeve.yaml" || die "cannot add REEVE_LOCAL_IMAGES to reeve.yaml"

# commit_shop VERSION PARAMS MESSAGE: the demo spec with this version and
# parameters (YAML lines "name: value" separated by ';'); prints the commit
commit_shop() {
    mkdir -p "$W/clusters/demo"
    sed "s/^  version: .*/  version: \"$1\"/" "$SRC/examples/demo/clusters/demo/shop.yaml" \
        >"$W/clusters/demo/shop.yaml"
    if [ -n "$2" ]; then
        echo "  parameters:" >>"$W/clusters/demo/shop.yaml"
        tr ';' '\n' <<<"$2" | sed 's/^/    /' >>"$W/clusters/demo/shop.yaml"
    fi
    commit_push "$3"
}
shop_nodes() { status_json | jq -r '.clusters[]? | select(.name == "shop") | .nodes[].name' | sort; }
start_times() { local n; for n in $(shop_nodes); do echo "$n $(psql_on "$n" "SELECT pg_postmaster_start_time()")"; done; }
show_all() { # SETTING: "node value" lines
    local n
    for n in $(shop_nodes); do echo "$n $(psql_on "$n" "SHOW $1")"; done
}

# T0620_KEEP=DIR: keep reeve's and the agents' logs there (debugging)
[ -z "${T0620_KEEP:-}" ] || at_exit "keep_logs $(printf %q "$T0620_KEEP")"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"
ok "reeve serve is up; the image catalog offers postgresql 15 and 16"

# --- the cluster -------------------------------------------------------------
say "demo/shop with 3 instances"
M0=$(commit_shop 15 "" "demo/shop: 3 instances")
wait_apply "$M0" "3 instances" || die "the cluster did not come up"
wait_shape3 "3 instances"
P0=$(primary_now)
psql_on "$P0" "CREATE TABLE t0620 (id bigint PRIMARY KEY, at timestamptz DEFAULT now())" >/dev/null

# --- a. reloadable ---------------------------------------------------------------
say "a. work_mem 4MB -> 16MB: by reload"
T_A=$(start_times)
MA=$(commit_shop 15 "work_mem: \"16MB\"" "demo/shop: work_mem 16MB")
wait_apply "$MA" "work_mem" || true
assert_eq "$(shop_nodes | sed 's/$/ 16MB/')" "$(show_all work_mem)" "a: every node runs work_mem = 16MB"
assert_eq "$T_A" "$(start_times)" "a: no server restarted (postmaster start times unchanged)"
assert_eq "$P0" "$(primary_now)" "a: the primary is still $P0"

# --- b. restart-only ----------------------------------------------------------------
say "b. max_connections 100 -> 150: a rolling restart"
T_B=$(start_times)
SINCE=$(date -u +%FT%T.%3NZ)
MB=$(commit_shop 15 "work_mem: \"16MB\";max_connections: \"150\"" "demo/shop: max_connections 150")
wait_apply "$MB" "max_connections" || true
wait_shape3 "b: after the rolling restart"
assert_eq "$(shop_nodes | sed 's/$/ 150/')" "$(show_all max_connections)" "b: every node runs max_connections = 150"
changed=0
while read -r n t; do
    [ "$(psql_on "$n" "SELECT pg_postmaster_start_time()")" != "$t" ] && changed=$((changed + 1))
done <<<"$T_B"
assert_eq 3 "$changed" "b: every server restarted once"
EV=$(events_since "$SINCE")
check_roll "$(order_of "$EV")" "$P0" R "b"
P1=$(primary_now)
[ "$P1" != "$P0" ] && ok "b: the primary moved from $P0 to $P1" || fail "b: the primary is still $P0"

# --- c + d. rolling upgrade under writes -------------------------------------------------
say "c. version 15 -> 16 while a loop writes to the primary"
# The current primary first, as a client's connection string would list
# it: libpq then reaches the replicas (which restart one by one before the
# switchover) only once the primary refuses writes.
P1=$(primary_now)
SOCKS=$({ socket_of "$P1"; for n in $(shop_nodes); do [ "$n" = "$P1" ] || socket_of "$n"; done; } | paste -sd, -)
cat >"$T_TMP/writer.sh" <<EOF
#!/bin/bash
# one INSERT per iteration into whichever server takes writes
i=0
while [ ! -e "$T_TMP/writer.stop" ]; do
    i=\$((i + 1))
    if psql -X -At "host=$SOCKS port=5432 dbname=postgres user=postgres target_session_attrs=read-write connect_timeout=2" \
        -c "INSERT INTO t0620 (id) VALUES (\$i)" >/dev/null 2>>"$T_TMP/writer.err"; then
        echo "\$(date +%s%3N) ok \$i"
    else
        echo "\$(date +%s%3N) fail \$i"
        sleep 0.02
    fi
done
EOF
chmod 0755 "$T_TMP/writer.sh"
rm -f "$T_TMP/writer.stop"
install -m 0666 /dev/null "$T_TMP/writer.err"
runuser -u postgres -- "$T_TMP/writer.sh" >"$T_TMP/writer.log" 2>&1 &
WRITER=$!
sleep 2
SINCE=$(date -u +%FT%T.%3NZ)
MC=$(commit_shop 16 "work_mem: \"16MB\";max_connections: \"150\"" "demo/shop: postgresql 16")
wait_apply "$MC" "version 16" || true
wait_shape3 "c: after the upgrade"
sleep 2
touch "$T_TMP/writer.stop"
wait "$WRITER" 2>/dev/null || true
EV=$(events_since "$SINCE")
check_roll "$(order_of "$EV")" "$P1" U "c"
vers=$(jq -r '[.instances[] | .version] | unique | join(",")' "$ROOT/state.json")
assert_eq 16 "$vers" "c: every instance runs the catalog's postgresql 16"
P2=$(primary_now)
[ "$P2" != "$P1" ] && ok "c: the primary moved from $P1 to $P2" || fail "c: the primary is still $P1"

# d. the writes
oks=$(grep -c ' ok ' "$T_TMP/writer.log" || true)
fails=$(grep -c ' fail ' "$T_TMP/writer.log" || true)
[ "$oks" -gt 50 ] && ok "d: $oks inserts succeeded during the upgrade" || fail "d: only $oks inserts succeeded"
rows=$(psql_on "$P2" "SELECT count(*) FROM t0620")
assert_eq "$oks" "$rows" "d: every acknowledged insert is on the new primary $P2 (no loss)"
# the failures form one gap, inside the switchover
gap=$(awk '$2 == "fail" { if (!first) first = $1; last = $1; n++ }
           $2 == "ok" && first && !after && $1 > last { after = $1 }
           END { if (n) printf "%d %d %d %d", first, last, after, n; else print "0 0 0 0" }' "$T_TMP/writer.log")
read -r g_first g_last g_after g_n <<<"$gap"
okbetween=$(awk -v a="$g_first" -v b="$g_last" '$2 == "ok" && $1 > a && $1 < b' "$T_TMP/writer.log" | wc -l)
assert_eq 0 "$okbetween" "d: the failed inserts ($g_n) form a single gap"
sw_ms=$(grep "writes were unavailable for" <<<"$EV" | tail -n 1 | sed 's/.*unavailable for \([0-9]*\) ms.*/\1/')
if [ "$g_n" -gt 0 ]; then
    window=$((g_after - g_first))
    say "d: writes failed for ${window} ms (from the first failed insert to the next success); the agents measured ${sw_ms:-?} ms from stopping the old primary to the promotion"
    sws=$(grep "switchover [0-9a-f]* to .*stopping writes" <<<"$EV" | tail -n 1 | cut -d' ' -f1)
    swp=$(grep "switchover [0-9a-f]*: promoted" <<<"$EV" | tail -n 1 | cut -d' ' -f1)
    s_ms=$(date -d "$sws" +%s%3N)
    p_ms=$(date -d "$swp" +%s%3N)
    if [ "$g_first" -ge $((s_ms - 200)) ] && [ "$g_last" -le $((p_ms + 3000)) ]; then
        ok "d: every failed insert falls in the switchover ($sws .. $swp)"
    else
        fail "d: inserts failed outside the switchover: $g_first..$g_last vs $s_ms..$p_ms ($(sort -u "$T_TMP/writer.err" | head -n 3 | tr '\n' '|'))"
    fi
    [ "$window" -lt 10000 ] && ok "d: the write gap ($window ms) is under 10 s" || fail "d: the write gap lasted $window ms"
else
    ok "d: no insert failed at all (the agents measured ${sw_ms:-?} ms without writes)"
fi

# --- e. vertical resize -------------------------------------------------------------
say "e. memoryMiB 256 -> 512: resize_instance, shared_buffers a quarter of it, rolling restart"
P3=$(primary_now)
SINCE=$(date -u +%FT%T.%3NZ)
sed "s/^  version: .*/  version: \"16\"/; s/memoryMiB: 256/memoryMiB: 512/" \
    "$SRC/examples/demo/clusters/demo/shop.yaml" >"$W/clusters/demo/shop.yaml"
printf '  parameters:\n    work_mem: "16MB"\n    max_connections: "150"\n' >>"$W/clusters/demo/shop.yaml"
git -C "$W" commit -q -am "demo/shop: 512 MiB" && git -C "$W" push -q origin main
ME=$(git -C "$W" rev-parse HEAD)
wait_apply "$ME" "memoryMiB 512" || true
wait_shape3 "e: after the resize"
assert_eq "$(shop_nodes | sed 's/$/ 128MB/')" "$(show_all shared_buffers)" "e: every node runs shared_buffers = 128MB"
mem=$(jq -r '[.instances[] | .resources.memoryMiB] | unique | join(",")' "$ROOT/state.json")
assert_eq 512 "$mem" "e: the provider records 512 MiB for every instance"
EV=$(events_since "$SINCE")
check_roll "$(order_of "$EV")" "$P3" R "e"

if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
