# apply.sh - the harness of the apply scenarios (t0600, t0700): a bare spec
# repository and a work tree, the strict fake GitHub, `reeve serve` with the
# `local` provider on a loopback network of its own, and helpers to commit,
# wait for reeve/apply and run SQL on a node. Source it after lib.sh, with
# APPLY (seconds per apply), BUDGET (seconds for the whole run) and
# PER_CLUSTER set; REEVE_YAML_EXTRA is appended to reeve.yaml.
# Everything started is stopped on exit, agents and servers included (found
# by the temporary directory in their command lines).
# It also holds the helpers several scenarios share: committing, waiting for
# a primary, finding a node's files, stopping mariadbd, and the checks of a
# rolling change (t0620, t0630: set ROLL_CLUSTER).
need_cmd git curl jq python3 runuser psql ss
REEVE=${REEVE_BIN:-$REEVE_BUILD_DIR/reeve}
PROVIDER=$REEVE_BUILD_DIR/reeve-provider-local
AGENT=$REEVE_BUILD_DIR/reeve-agent
SRC=$REEVE_SOURCE_DIR
FAKE=$SRC/tests/fakeforge/fakeforge.py
FAKEQ=$SRC/tests/integration/gitops/fakeq.py
for b in "$REEVE" "$PROVIDER" "$AGENT"; do [ -x "$b" ] || die "no $b (build first)"; done
[ "$(id -u)" -eq 0 ] || die "needs root: the local provider runs servers as the postgres user"
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 is not installed (scripts/deps.sh)"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=dev GIT_AUTHOR_EMAIL=dev@example.com
export GIT_COMMITTER_NAME=dev GIT_COMMITTER_EMAIL=dev@example.com

chmod 0755 "$T_TMP"   # the postgres user reaches its instance directories
ROOT=$T_TMP/local
mkdir -p "$ROOT"
chmod 0755 "$ROOT"
TOKEN=forge-token-$RANDOM$RANDOM
T_START=$SECONDS

# A loopback network of our own (127.0.X.0/24, X in 150..249, nothing
# listening on it), so two runs, or a run and `make demo`, never share one.
NET=""
for ((i = 0; i < 50; i++)); do
    x=$((150 + RANDOM % 100))
    if ! ss -Htln 2>/dev/null | awk '{print $4}' | grep -q "^127\.0\.$x\."; then NET=127.0.$x; break; fi
done
[ -n "$NET" ] || die "no free loopback network 127.0.150-249.0/24"

# --- processes ------------------------------------------------------------
REEVE_PID="" FAKE_PID=""
pids_under() { # PATTERN: pids whose command line mentions $T_TMP and PATTERN
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *"$T_TMP"* && $cmd == *$1* ]] && echo "${p#/proc/}"
    done
    return 0
}
wait_gone() { # SECS PID...
    local secs=$1 i p alive
    shift
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for p in "$@"; do
            if kill -0 "$p" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) != Z ]]; then
                alive=1
            fi
        done
        [ "$alive" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}
stop_reeve() { # [SIGNAL]: stop reeve serve (TERM by default); 1 if KILL was needed
    local sig=${1:-TERM} rc=0
    [ -n "$REEVE_PID" ] || return 0
    kill "-$sig" "$REEVE_PID" 2>/dev/null || true
    if ! wait_gone 40 "$REEVE_PID"; then kill -KILL "$REEVE_PID" 2>/dev/null || true; rc=1; fi
    wait "$REEVE_PID" 2>/dev/null || true
    REEVE_PID=""
    return "$rc"
}
# shellcheck disable=SC2317,SC2086  # called through at_exit; pid lists split
stop_all() {
    local pids
    stop_reeve TERM || true
    [ -z "$FAKE_PID" ] || { kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" 2>/dev/null; } || true
    pids=$(pids_under reeve-agent)
    if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null; wait_gone 20 $pids || kill -KILL $pids 2>/dev/null; fi
    pids=$(pids_under bin/postgres)
    if [ -n "$pids" ]; then kill -QUIT $pids 2>/dev/null; wait_gone 10 $pids || kill -KILL $pids 2>/dev/null; fi
    pids=$(pids_under provider-local)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    if [ "$T_FAILED" -gt 0 ] && [ -f "$T_TMP/reeve.log" ]; then
        say "last lines of reeve's log:"
        tail -n 40 "$T_TMP/reeve.log" | sed 's/^/#   /'
    fi
}
at_exit stop_all

wait_file() { local i; for ((i = 0; i < $2 * 20; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# --- the spec repository and the fake forge --------------------------------
W=$T_TMP/work
git init -q --bare -b main "$T_TMP/specs.git"
git init -q -b main "$W"
echo "specs" >"$W/README.md"
git -C "$W" add -A
git -C "$W" commit -q -m "empty fleet"
git -C "$W" remote add origin "$T_TMP/specs.git"
git -C "$W" push -q origin main

python3 "$FAKE" --kind github --token "$TOKEN" --repo acme/specs --port 0 \
    --port-file "$T_TMP/fake.port" 2>"$T_TMP/fake.log" &
FAKE_PID=$!
wait_file "$T_TMP/fake.port" 10 || die "fakeforge did not start: $(cat "$T_TMP/fake.log")"
F_URL=http://127.0.0.1:$(tr -d '\n' <"$T_TMP/fake.port")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
R_URL=http://127.0.0.1:$PORT
cat >"$T_TMP/reeve.yaml" <<EOF
listen: 127.0.0.1:$PORT
dataDir: $T_TMP/data
agentURL: $R_URL
log: {level: info, format: text}
repository: {url: file://$T_TMP/specs.git, branch: main, pollInterval: 1}
forge:
  kind: github
  apiURL: $F_URL
  repository: acme/specs
  tokenRef: env:REEVE_FORGE_TOKEN
ticks: {base: 2, fast: 1}
providers:
  - name: local
    command: [$PROVIDER]
    env: {REEVE_LOCAL_ROOT: $ROOT, REEVE_AGENT_BIN: $AGENT, REEVE_LOCAL_NET: "$NET"}
limits: {maxConcurrentActions: 8, perProvider: 4, perCluster: $PER_CLUSTER}
agent: {ttlMs: 3000, tickMs: 300}
${REEVE_YAML_EXTRA:-}
EOF

start_reeve() {
    REEVE_FORGE_TOKEN=$TOKEN "$REEVE" serve -c "$T_TMP/reeve.yaml" >>"$T_TMP/reeve.log" 2>&1 </dev/null &
    REEVE_PID=$!
    local i code=000
    for ((i = 0; i < 150; i++)); do
        kill -0 "$REEVE_PID" 2>/dev/null || break
        code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$R_URL/healthz" || true)
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# --- helpers ----------------------------------------------------------------
status_json() { "$REEVE" status --server "$R_URL" --json 2>/dev/null || echo null; }
# shop_summary: "nodes primaries streaming_replicas primary_name" from reeve status
# checks it is success and that pending came first
wait_apply() {
    local sha=$1 what=$2 js states t0=$SECONDS left limit=$APPLY
    left=$((BUDGET - (SECONDS - T_START)))
    [ "$left" -gt 10 ] || die "out of time (budget ${BUDGET}s) before: $what"
    [ "$left" -ge "$limit" ] || limit=$left
    js=$(python3 "$FAKEQ" "$F_URL" wait --sha "$sha" --context reeve/apply --timeout "$limit" \
        2>>"$T_TMP/fakeq.err" || true)
    if [ -z "$js" ]; then
        fail "$what: no final reeve/apply on ${sha:0:12} within ${limit}s ($(tail -n 1 "$T_TMP/fakeq.err" | cut -c1-300))"
        "$REEVE" status --server "$R_URL" 2>&1 | sed 's/^/#   /' || true
        return 1
    fi
    if [ "$(jq -r .state <<<"$js")" = success ]; then
        ok "$what: reeve/apply success on ${sha:0:12} after $((SECONDS - t0)) s ($(jq -r .description <<<"$js"))"
    else
        fail "$what: reeve/apply is $(jq -r .state <<<"$js") on ${sha:0:12}: $(jq -r .description <<<"$js")"
        "$REEVE" status --server "$R_URL" 2>&1 | sed 's/^/#   /' || true
        return 1
    fi
    states=$(python3 "$FAKEQ" "$F_URL" list --sha "$sha" | jq -r 'select(.context == "reeve/apply") | .state' | tr '\n' ' ')
    if [[ $states == pending* ]]; then
        ok "$what: reeve/apply went $(sed 's/ $//; s/ / -> /g' <<<"$states")"
    else
        fail "$what: reeve/apply states on ${sha:0:12} should start with pending: '$states'"
    fi
}

# wait_shape NODES REPLICAS WHAT: reeve status shows NODES nodes, one healthy
# primary and REPLICAS streaming replicas (bounded)
socket_of() { # NODE: the node's socket directory, from its agent.json
    local f
    for f in "$ROOT"/instances/*/agent.json; do
        [ -f "$f" ] || continue
        if [ "$(jq -r '.node // ""' "$f")" = "$1" ]; then jq -r '.engine.socket_dir // ""' "$f"; return 0; fi
    done
}
psql_on() { # NODE SQL: run SQL as postgres on NODE's socket; prints the rows
    local sock
    sock=$(socket_of "$1")
    [ -n "$sock" ] || { echo "no socket dir for $1"; return 1; }
    timeout 10 runuser -u postgres -- psql -X -At -h "$sock" -p 5432 -U postgres -d postgres -c "$2" 2>&1
}
mdb_on() { # NODE SQL: run SQL as root over a MariaDB node's socket; prints the rows
    local sock
    sock=$(socket_of "$1")
    [ -n "$sock" ] || { echo "no socket dir for $1"; return 1; }
    timeout 10 mariadb --no-defaults -N -B -S "$sock/mariadbd.sock" -u root -e "$2" 2>&1
}

stop_mariadb() { # mariadbd processes of this run (their files are under $T_TMP); for at_exit
    local pids
    pids=$(pids_under mariadbd)
    # shellcheck disable=SC2086
    if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null; wait_gone 20 $pids || kill -KILL $pids 2>/dev/null; fi
    return 0
}
commit_push() { # MESSAGE: commit and push the work tree; prints the commit
    git -C "$W" add -A
    git -C "$W" commit -q -m "$1"
    git -C "$W" push -q origin main
    git -C "$W" rev-parse HEAD
}
primary_of() { # CLUSTER: the name of its healthy primary in namespace demo, or ""
    status_json | jq -r --arg c "$1" '[.clusters[]? | select(.namespace == "demo" and .name == $c) |
        .nodes[]? | select(.healthy and .role == "primary") | .name] | first // ""'
}
wait_primary() { # CLUSTER: bounded wait for a healthy primary; prints its name
    local p="" i
    for ((i = 0; i < 60; i++)); do
        p=$(primary_of "$1")
        [ -n "$p" ] && break
        sleep 1
    done
    echo "$p"
}
agent_conf_of() { # NODE: the node's agent configuration file
    local f
    for f in "$ROOT"/instances/*/agent.json; do
        [ -f "$f" ] || continue
        [ "$(jq -r '.node // ""' "$f")" = "$1" ] && { echo "$f"; return 0; }
    done
}

# keep_logs DIR: copy reeve's and the agents' logs (and agent.json) there;
# for at_exit when debugging (T0620_KEEP, T0630_KEEP)
keep_logs() {
    local f n
    mkdir -p "$1"
    cp "$T_TMP/reeve.log" "$T_TMP"/writer.* "$1/" 2>/dev/null
    for f in "$ROOT"/instances/*/agent.log; do
        n=$(jq -r .node "$(dirname "$f")/agent.json")
        cp "$f" "$1/$n.log" 2>/dev/null
        cp "$(dirname "$f")/agent.json" "$1/$n.json" 2>/dev/null
    done
    return 0
}

# --- rolling changes of demo/$ROLL_CLUSTER (t0620, t0630) --------------------
primary_now() { local p; p=$(primary_of "$ROLL_CLUSTER"); echo "${p:--}"; } # "-" when none
wait_shape3() { # WHAT: 3 nodes, 1 healthy primary, 2 streaming replicas (bounded)
    local got i
    for ((i = 0; i < 60; i++)); do
        got=$(status_json | jq -r --arg c "$ROLL_CLUSTER" '[.clusters[]? | select(.name == $c)] | first // {} |
            "\(.nodes // [] | length) \([.nodes[]? | select(.healthy and .role == "primary")] | length) \([.nodes[]? | select(.healthy and .role == "replica" and .streaming)] | length)"')
        [ "$got" = "3 1 2" ] && break
        sleep 1
    done
    assert_eq "3 1 2" "$got" "$1: nodes, healthy primaries, streaming replicas"
}
# The ops events of the agents and reeve, in time order: "ts who what"
events_since() { # TIMESTAMP (ISO, from `date -u +%FT%T.%3NZ`)
    {
        for f in "$ROOT"/instances/*/agent.log; do
            grep -h " ops: \| starting (ttl" "$f" 2>/dev/null || true
        done
        grep -h "runners: .*\(restarted, healthy\|switchover done\|upgraded to\)" "$T_TMP/reeve.log" || true
    } | awk -v since="$1" '$1 >= since' | sort
}
# order_of EVENTS: one word per event, e.g. "R:shop-1 S:shop-0 P:shop-2"
order_of() {
    sed -n "s/.*restart [0-9a-f-]* of '\([^']*\)' done.*/R:\1/p;
            s/.*node '\([^']*\)' restarted, healthy and caught up.*/C:\1/p;
            s/.*node '\([^']*\)' upgraded to .*, healthy and caught up.*/C:\1/p;
            s/.*node '\([^']*\)' of 'demo\/$ROLL_CLUSTER' starting.*/U:\1/p;
            s/.*switchover [0-9a-f]* to '\([^']*\)': stopping writes.*/S:\1/p;
            s/.*switchover done: '\([^']*\)' is the primary.*/D:\1/p" <<<"$1" | tr '\n' ' ' | sed 's/ $//'
}
# check_roll EVENTS OLD_PRIMARY EVENT_KIND WHAT: replicas one at a time (each
# caught up before the next), the switchover, then the old primary
check_roll() {
    local order=$1 p0=$2 k=$3 what=$4 r1 r2 new want got
    r1=$(tr ' ' '\n' <<<"$order" | sed -n "s/^$k://p" | grep -vx "$p0" | sed -n 1p)
    r2=$(tr ' ' '\n' <<<"$order" | sed -n "s/^$k://p" | grep -vx "$p0" | sed -n 2p)
    new=$(tr ' ' '\n' <<<"$order" | sed -n 's/^S://p' | sed -n 1p)
    want="$k:$r1 C:$r1 $k:$r2 C:$r2 S:$new D:$new $k:$p0 C:$p0"
    # keep one event of each kind per node, in first-seen order
    got=$(tr ' ' '\n' <<<"$order" | awk 'NF && !seen[$0]++' | tr '\n' ' ' | sed 's/ $//')
    assert_eq "$want" "$got" "$what: replicas one at a time, each caught up, then the switchover, then the old primary"
    if [ -n "$r1" ] && [ -n "$r2" ] && [ "$r1" != "$r2" ] && [ "$new" != "$p0" ]; then
        ok "$what: replicas $r1 then $r2, switchover from $p0 to $new, $p0 last"
    else
        fail "$what: unexpected roll: '$order'"
    fi
}
