# lib.sh - shared helpers for the integration scenarios (tests/integration/t*.sh).
#
# Source it first thing:   . "$(dirname "$0")/lib.sh"
#
# It turns on `set -euo pipefail`, checks the environment ctest provides,
# makes a private temporary directory ($T_TMP) removed on exit, and offers:
#   say MSG                print what is being checked
#   ok MSG / fail MSG      count a passed / failed check (fail does not exit)
#   die MSG                fail and exit at once
#   need_env VAR...        exit with a clear message unless each VAR is set
#   need_cmd CMD...        exit with a clear message unless each CMD exists
#   at_exit CMD            run CMD on exit (last registered runs first)
#   run CMD...             run CMD, capture $RUN_OUT, $RUN_ERR and $RUN_RC
#   with_timeout SECS CMD  run CMD, killed after SECS (exit 124 on timeout)
#   assert_eq WANT GOT WHAT, assert_rc WANT WHAT (after run)
#   diff_text WANT GOT WHAT   compare two strings, show a unified diff
#   t_done                 print the "N passed, N failed" line and exit
set -euo pipefail

T_NAME=$(basename "${0%.sh}")
T_PASSED=0
T_FAILED=0
T_EXIT_HOOKS=()

say() { printf '# %s\n' "$*"; }

ok() {
    T_PASSED=$((T_PASSED + 1))
    printf 'ok %d - %s\n' "$((T_PASSED + T_FAILED))" "$*"
}

fail() {
    T_FAILED=$((T_FAILED + 1))
    printf 'not ok %d - %s\n' "$((T_PASSED + T_FAILED))" "$*"
}

die() {
    printf '%s: FAIL: %s\n' "$T_NAME" "$*" >&2
    exit 1
}

need_env() {
    local v
    for v in "$@"; do
        [ -n "${!v:-}" ] || die "\$$v is not set (run through ctest, or export it)"
    done
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' is not installed (run scripts/deps.sh)"
    done
}

at_exit() { T_EXIT_HOOKS=("$*" "${T_EXIT_HOOKS[@]}"); }

t_cleanup() {
    local rc=$? h
    for h in "${T_EXIT_HOOKS[@]}"; do
        eval "$h" || true
    done
    if [ -n "${T_TMP:-}" ] && [ -d "$T_TMP" ]; then
        # T_KEEP=1 keeps the directory (logs, data) for a look after a failure.
        if [ "${T_KEEP:-0}" = 1 ]; then echo "# kept $T_TMP"; else rm -rf "$T_TMP"; fi
    fi
    exit "$rc"
}
trap t_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/reeve-$T_NAME.XXXXXX")

# run CMD...: never fails itself; the caller checks $RUN_RC, $RUN_OUT, $RUN_ERR.
# shellcheck disable=SC2034  # read by the scripts that source this file
run() {
    RUN_RC=0
    "$@" >"$T_TMP/.run.out" 2>"$T_TMP/.run.err" || RUN_RC=$?
    RUN_OUT=$(cat "$T_TMP/.run.out")
    RUN_ERR=$(cat "$T_TMP/.run.err")
}

with_timeout() {
    local secs=$1
    shift
    timeout --kill-after=5 "$secs" "$@"
}

assert_eq() {
    if [ "$1" = "$2" ]; then
        ok "$3"
    else
        fail "$3: expected '$1', got '$2'"
    fi
}

assert_rc() {
    if [ "$RUN_RC" -eq "$1" ]; then
        ok "$2 (exit $1)"
    else
        fail "$2: expected exit $1, got $RUN_RC"
        [ -z "$RUN_ERR" ] || printf '#   stderr: %s\n' "$RUN_ERR"
    fi
}

diff_text() {
    if [ "$1" = "$2" ]; then
        ok "$3"
    else
        fail "$3: output differs (- expected, + actual)"
        diff -u <(printf '%s\n' "$1") <(printf '%s\n' "$2") | tail -n +3 | sed 's/^/#   /' || true
    fi
}

t_done() {
    printf '%s: %d passed, %d failed\n' "$T_NAME" "$T_PASSED" "$T_FAILED"
    [ "$T_FAILED" -eq 0 ] || exit 1
    exit 0
}
