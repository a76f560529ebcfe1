#!/usr/bin/env bash
# `make demo`: the whole GitOps loop on this machine, with real PostgreSQL.
#
#   1. a Git repository of specs (examples/demo), as on a forge: a bare
#      repository and a working clone pushing to it
#   2. `reeve serve` following its main branch, with the `local` provider
#      (instances are directories, loopback addresses 127.0.100.x and a
#      reeve-agent each, running PostgreSQL 15 as the postgres user)
#   3. a change adding the cluster demo/shop (3 instances): `reeve validate`
#      and `reeve plan` show it, as a pull request would; then it is merged
#   4. reeve applies it; the script waits (bounded) for one primary and two
#      streaming replicas, prints `reeve status` and a connection string
#   5. it keeps running until Ctrl-C, then stops reeve, the agents and the
#      servers, and removes everything it created
#
# Without a terminal on stdin, or with DEMO_EXIT=1, it stops after step 4.
# DEMO_WAIT (seconds, default 180) bounds the wait; DEMO_KEEP=1 keeps the
# directory (logs, data) after the end. docs/demo.md explains the output.
# shellcheck disable=SC2317  # the stop functions run from traps
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) bdir=$build ;; *) bdir=$top/$build ;; esac
reeve=$bdir/reeve
provider=$bdir/reeve-provider-local
agent=$bdir/reeve-agent
wait_s=${DEMO_WAIT:-180}

say() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

for b in "$reeve" "$provider" "$agent"; do
    [ -x "$b" ] || die "no $b: build first ('make demo' does)"
done
for c in git curl jq runuser setsid psql python3; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' is not installed (scripts/deps.sh installs what reeve needs)"
done
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "PostgreSQL 15 is not installed (scripts/deps.sh installs postgresql-15)"
if [ "$(id -u)" -ne 0 ]; then
    die "the local provider runs each server as the postgres user, which needs root: run 'sudo make demo'"
fi
id postgres >/dev/null 2>&1 || die "there is no 'postgres' user (it comes with the postgresql-15 package)"

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com

# Everything lives under one directory; short, because PostgreSQL's socket
# paths are limited to about 100 bytes.
D=$(mktemp -d /tmp/reeve-demo.XXXXXX)
chmod 0755 "$D"   # the postgres user must reach its instance directories
ROOT=$D/local
mkdir -p "$ROOT"
chmod 0755 "$ROOT"
REEVE_PID=""

# --- stopping: reeve, then every agent and server started under $D --------
pids_under() { # PATTERN: the pids whose command line mentions $D and PATTERN
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        [[ $cmd == *"$D"* && $cmd == *$1* ]] && echo "${p#/proc/}"
    done
    return 0
}
wait_gone() { # SECS PID...: 0 when all are gone in time
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
stop_everything() {
    local pids
    if [ -n "$REEVE_PID" ] && kill -0 "$REEVE_PID" 2>/dev/null; then
        kill -TERM "$REEVE_PID" 2>/dev/null || true
        wait_gone 40 "$REEVE_PID" || kill -KILL "$REEVE_PID" 2>/dev/null || true
        wait "$REEVE_PID" 2>/dev/null || true
    fi
    REEVE_PID=""
    # The agents stop their servers (fast shutdown) when told to.
    pids=$(pids_under reeve-agent)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 20 $pids || kill -KILL $pids 2>/dev/null || true
    fi
    # Any server left (its agent was killed): immediate shutdown, then KILL.
    pids=$(pids_under bin/postgres)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -QUIT $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 10 $pids || kill -KILL $pids 2>/dev/null || true
    fi
    pids=$(pids_under provider-local)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    printf '\n==> stopping reeve, the agents and their servers\n'
    stop_everything
    if [ "${DEMO_KEEP:-0}" = 1 ]; then
        note "kept $D (reeve.log, local/instances/*/)"
    else
        rm -rf "$D"
        note "removed $D"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the spec repository -----------------------------------------------
say "a spec repository: $D/specs.git (bare, as on a forge), a working clone in $D/work"
git init -q --bare -b main "$D/specs.git"
git init -q -b main "$D/work"
cp "$top/examples/demo/README.md" "$D/work/"
git -C "$D/work" add -A
git -C "$D/work" commit -q -m "An empty fleet"
git -C "$D/work" remote add origin "$D/specs.git"
git -C "$D/work" push -q origin main
note "main: $(git -C "$D/work" log --oneline -1)"

# --- 2. reeve serve ---------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
cat >"$D/reeve.yaml" <<EOF
listen: 127.0.0.1:$port
dataDir: $D/data
agentURL: $URL
log: {level: info, format: text}
repository:
  url: file://$D/specs.git
  branch: main
  pollInterval: 2
forge:
  kind: none
ticks: {base: 2, fast: 1}
providers:
  - name: local
    command: [$provider]
    env: {REEVE_LOCAL_ROOT: $ROOT, REEVE_AGENT_BIN: $agent}
limits: {maxConcurrentActions: 8, perProvider: 4, perCluster: ${DEMO_PER_CLUSTER:-2}}
agent: {ttlMs: 3000, tickMs: 300}
EOF
say "reeve serve -c $D/reeve.yaml   (log: $D/reeve.log)"
# In a session of its own: Ctrl-C reaches this script, which stops reeve
# (and then the agents) in order, rather than reeve on its own.
setsid "$reeve" serve -c "$D/reeve.yaml" >"$D/reeve.log" 2>&1 </dev/null &
REEVE_PID=$!
up=""
for ((i = 0; i < 100; i++)); do
    kill -0 "$REEVE_PID" 2>/dev/null || break
    code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$URL/healthz" || true)
    if [ "$code" = 200 ]; then up=1; break; fi
    sleep 0.1
done
if [ -z "$up" ]; then
    tail -n 20 "$D/reeve.log" >&2 || true
    die "reeve serve did not come up on $URL within 10 s (its log is above)"
fi
note "up on $URL: $(curl -s --max-time 2 "$URL/healthz")"

# --- 3. a change: add demo/shop -------------------------------------------
say "a change on branch add-shop: examples/demo/clusters/demo/shop.yaml (3 instances)"
git -C "$D/work" checkout -q -b add-shop
cp -R "$top/examples/demo/clusters" "$D/work/"
git -C "$D/work" add -A
git -C "$D/work" commit -q -m "demo/shop: PostgreSQL 15, 3 instances"

say "reeve validate   (what reeve/validate says on the pull request)"
(cd "$D/work" && "$reeve" validate)

say "reeve plan --base main --head add-shop   (what reeve/plan says on the pull request)"
rc=0
"$reeve" plan --repo "$D/work" --base main --head add-shop || rc=$?
# reeve plan exits 2 when there are changes to make, as terraform -detailed-exitcode.
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || die "reeve plan failed (exit $rc)"

say "merge add-shop into main and push: reeve picks it up within its poll interval (2 s)"
git -C "$D/work" checkout -q main
git -C "$D/work" merge -q --no-ff -m "Merge branch 'add-shop'" add-shop
git -C "$D/work" push -q origin main
merge=$(git -C "$D/work" rev-parse HEAD)
note "main: $(git -C "$D/work" log --oneline -1)"

# --- 4. wait until the cluster runs ---------------------------------------
say "applying: waiting (at most ${wait_s} s) for 1 primary and 2 streaming replicas"
summary() { # the status JSON -> "primaries replicas_streaming nodes apply_state"
    jq -r '[.clusters[]? | select(.namespace == "demo" and .name == "shop")] | first // {} |
        [([.nodes[]? | select(.healthy and .role == "primary")] | length),
         ([.nodes[]? | select(.healthy and .role == "replica" and .streaming)] | length),
         (.nodes // [] | length), (.apply.state // "none"),
         ([.actions[]? | select(.state == "running") | "\(.kind) \(.node)"] | join(", ") | if . == "" then "-" else . end)]
        | map(tostring) | join("|")'
}
t0=$SECONDS
last=-10
ready=""
failed_for=0
while :; do
    kill -0 "$REEVE_PID" 2>/dev/null || { tail -n 20 "$D/reeve.log" >&2; die "reeve serve exited (its log is above)"; }
    js=$("$reeve" status --server "$URL" --json 2>"$D/status.err" || true)
    s=$(summary <<<"${js:-null}" 2>/dev/null || echo "0|0|0|none|-")
    IFS='|' read -r prim repl nodes astate running <<<"$s"
    el=$((SECONDS - t0))
    if [ "$prim" = 1 ] && [ "$repl" = 2 ]; then ready=1; break; fi
    # A failed apply with nothing running for 30 s will not heal by waiting.
    if [ "$astate" = failure ] && [ "$running" = - ]; then
        failed_for=$((failed_for + 1))
        if [ "$failed_for" -ge 30 ]; then wait_s=$el; fi
    else
        failed_for=0
    fi
    if [ $((el - last)) -ge 10 ]; then
        if [ -z "$js" ]; then
            note "$(printf '%3d s' "$el"): reeve status: $(head -n 1 "$D/status.err")"
        else
            note "$(printf '%3d s' "$el"): $nodes node(s) reported, $prim primary, $repl streaming replica(s); apply $astate; running: $running"
        fi
        last=$el
    fi
    [ "$el" -lt "$wait_s" ] || break
    sleep 1
done
if [ -z "$ready" ]; then
    "$reeve" status --server "$URL" || true
    echo "--- last lines of $D/reeve.log:" >&2
    tail -n 30 "$D/reeve.log" >&2 || true
    die "demo/shop did not reach 1 primary + 2 streaming replicas within $((SECONDS - t0)) s"
fi
note "$((SECONDS - t0)) s: 1 primary and 2 streaming replicas, healthy"
# reeve/apply on the merge turns to success once the ready step is done.
for ((i = 0; i < 30; i++)); do
    js=$("$reeve" status --server "$URL" --json 2>/dev/null || true)
    astate=$(jq -r '.clusters[]? | select(.name == "shop") | .apply.state // ""' <<<"${js:-null}" 2>/dev/null || true)
    [ "$astate" = success ] && break
    sleep 1
done

say "reeve status"
"$reeve" status --server "$URL"

# --- a user to connect with -----------------------------------------------
primary=$(jq -r '.clusters[] | select(.name == "shop") | .nodes[] | select(.role == "primary") | "\(.name) \(.address) \(.port)"' <<<"$js" | head -n 1)
read -r pname paddr pport <<<"$primary"
sock=""
for f in "$ROOT"/instances/*/agent.json; do
    [ -f "$f" ] || continue
    if [ "$(jq -r '.node // ""' "$f")" = "$pname" ]; then
        sock=$(jq -r '.engine.socket_dir // ""' "$f")
    fi
done
[ -n "$sock" ] || die "cannot find the socket directory of $pname under $ROOT/instances"
addr_of() { # NODE ADDRESS_FROM_STATUS: the address, from agent.json when status has none
    local f
    if [ -n "$2" ] && [ "$2" != null ]; then echo "$2"; return; fi
    for f in "$ROOT"/instances/*/agent.json; do
        [ "$(jq -r '.node // ""' "$f")" = "$1" ] && jq -r '.engine.listen_address // ""' "$f"
    done
    return 0
}
paddr=$(addr_of "$pname" "$paddr")
[ -n "$pport" ] && [ "$pport" != null ] || pport=5432
password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$pport" -U postgres -d postgres \
    -c "CREATE ROLE demo LOGIN PASSWORD '$password'" \
    -c "CREATE DATABASE demo OWNER demo" >/dev/null
conn="postgresql://demo:$password@$paddr:$pport/demo"
check=$(psql -X -At "$conn" -c "select 'connected to ' || current_database() || ' on ' || inet_server_addr() || ', in recovery: ' || pg_is_in_recovery()" 2>&1) \
    || die "cannot connect as demo: $check"

say "connect to the primary ($pname)"
note "psql '$conn'"
note "($check)"
note "replicas (read-only):"
jq -r '.clusters[] | select(.name == "shop") | .nodes[] | select(.role == "replica") | "\(.name) \(.address) \(.port)"' <<<"$js" |
    while read -r n a p; do
        a=$(addr_of "$n" "$a")
        [ "$p" != null ] || p=5432
        note "  $n: psql 'postgresql://demo:$password@$a:$p/demo'"
    done
note "reeve: $reeve status --server $URL"
note "plan page of the merge: $URL/plans/$merge"

if [ "${DEMO_EXIT:-0}" = 1 ] || [ ! -t 0 ]; then
    say "done (DEMO_EXIT=1 or no terminal: not waiting)"
    exit 0
fi
say "running; change $D/work and push to see reeve apply it. Ctrl-C stops and removes everything."
while kill -0 "$REEVE_PID" 2>/dev/null; do sleep 1; done
die "reeve serve exited; see $D/reeve.log"
