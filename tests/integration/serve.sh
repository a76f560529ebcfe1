# serve.sh - the harness of the scenarios that run `reeve serve` with the
# test provider and no database (t0800, t0810, t0820). Source it after
# lib.sh, with WAIT (seconds per bounded wait) set. It checks the build,
# isolates git and curl from the machine's settings, makes $D (= $T_TMP)
# with $D/data and an empty spec repository $D/specs (branch main), and sets
# REEVE, SRC and PROVIDER. Then:
#   specs_commit MSG        commit everything in $D/specs
#   serve_config            write $D/reeve.yaml (append more with cat >>)
#   start_reeve             start `reeve serve`, wait for its port: $R is its URL
#   wait_healthy            until GET $R/healthz answers 200 (WAIT seconds)
#   stop_all                stop every reeve started (also done on exit)
#   wait_file FILE SECS     until FILE exists and is not empty
#   add_agent_token TOKEN NAMESPACE CLUSTER NODE
#                           put the token of an agent into dcs.db (reeve stopped)
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
need_cmd git
REEVE=${REEVE_BIN:-$REEVE_BUILD_DIR/reeve}
SRC=$REEVE_SOURCE_DIR
PROVIDER=$SRC/providers/test/reeve-provider-test
[ -x "$REEVE" ] || die "no reeve binary at $REEVE (build first)"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=dev GIT_AUTHOR_EMAIL=dev@example.com
export GIT_COMMITTER_NAME=dev GIT_COMMITTER_EMAIL=dev@example.com

D=$T_TMP
mkdir -p "$D/data"
git init -q -b main "$D/specs"
SERVE_PIDS=()

specs_commit() { # MSG
    git -C "$D/specs" add -A
    git -C "$D/specs" commit -qm "$1"
}

serve_config() {
    cat >"$D/reeve.yaml" <<YAML
listen: 127.0.0.1:0
dataDir: $D/data
log: {level: debug}
repository:
  url: $D/specs
  pollInterval: 1
forge: {kind: none}
ticks: {base: 1, fast: 1}
providers:
  - name: local
    command: ['$PROVIDER']
    env:
      REEVE_PROVIDER_TEST_STATE: $D/provider.json
YAML
}

stop_pid() { # PID SECS: TERM, bounded wait, then KILL
    local pid=$1 secs=${2:-10} i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317  # called through at_exit
stop_all() {
    local p
    for p in "${SERVE_PIDS[@]}"; do stop_pid "$p" 5; done
    SERVE_PIDS=()
}
at_exit stop_all

wait_file() { # FILE SECS
    local i
    for ((i = 0; i < $2 * 20; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done
    return 1
}

start_reeve() {
    rm -f "$D/data/port"
    "$REEVE" serve -c "$D/reeve.yaml" >>"$D/reeve.out" 2>>"$D/reeve.log" </dev/null &
    SERVE_PIDS+=($!)
    wait_file "$D/data/port" 10 || die "reeve serve wrote no port file; log: $(tail -n 5 "$D/reeve.log")"
    R=http://127.0.0.1:$(tr -d '\n' <"$D/data/port")
}

wait_healthy() {
    local i
    for ((i = 0; i < WAIT * 4; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$R/healthz" || true)" = 200 ] && return 0
        sleep 0.25
    done
    return 1
}

add_agent_token() { # TOKEN NAMESPACE CLUSTER NODE
    local digest
    digest=$(printf '%s' "$1" | sha256sum | cut -c1-64)
    sqlite3 "$D/data/dcs.db" "INSERT INTO dcs_keys (key, value, create_rev, mod_rev, version, session)
        VALUES ('/_reeve/agent-tokens/$digest',
                '{\"sha256\":\"$digest\",\"namespace\":\"$2\",\"cluster\":\"$3\",\"node\":\"$4\"}',
                1, 1, 1, 0);"
    sqlite3 "$D/data/dcs.db" "UPDATE dcs_meta SET revision = 1"
}
