#!/usr/bin/env bash
# t0300-forge-statuses: commit statuses reach GitHub, Gitea and GitLab as each
# documents them.
#
# Part 1 checks the strict fake itself (tests/fakeforge/fakeforge.py) with
# curl: it must refuse what the real services refuse, or part 2 proves
# nothing. Part 2 runs the outbox end to end (real forge client, real
# SQLite, wall clock) against the fake for each kind: statuses posted with
# the right fields, 503s retried, a bad token not retried, rate limits
# (reset time and Retry-After) honoured. Bounded: about a minute.
set -euo pipefail

: "${REEVE_SOURCE_DIR:?set REEVE_SOURCE_DIR to the source tree}"
: "${REEVE_BUILD_DIR:?set REEVE_BUILD_DIR to the build tree}"
FAKE="$REEVE_SOURCE_DIR/tests/fakeforge/fakeforge.py"
DRIVER="$REEVE_BUILD_DIR/test_outbox"
command -v python3 >/dev/null || { echo "t0300: python3 is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "t0300: curl is required" >&2; exit 1; }
[ -x "$DRIVER" ] || { echo "t0300: build test_outbox first ($DRIVER)" >&2; exit 1; }
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY

TMP=$(mktemp -d /tmp/rv-t0300-XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

SHA=0123456789abcdef0123456789abcdef01234567
FAILS=0
URL=

start_fake() { # kind extra-args...
    local kind=$1; shift
    local pf="$TMP/port.$kind.$RANDOM"
    python3 "$FAKE" --kind "$kind" --token T --port 0 --port-file "$pf" "$@" &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
    [ -s "$pf" ] || { echo "t0300: fakeforge ($kind) did not start" >&2; exit 1; }
    URL="http://127.0.0.1:$(cat "$pf")"
}

# expect <code> <what> curl-args...: the fake must answer <code>.
expect() {
    local want=$1 what=$2; shift 2
    local got
    got=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 5 "$@")
    if [ "$got" != "$want" ]; then
        echo "not ok - $what: expected $want, got $got: $(head -c 300 "$TMP/body")"
        FAILS=$((FAILS + 1))
    else
        echo "ok - $what ($got)"
    fi
}

long() { python3 -c "import sys; print('\u00e9' * int(sys.argv[1]))" "$1"; }
JSON=(-H 'Content-Type: application/json')

echo "# part 1: the fakes are strict"
start_fake github
GH="$URL/repos/acme/infra/statuses/$SHA"
expect 201 "github accepts a documented status" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"pending","context":"reeve/plan","description":"x","target_url":"https://r.example/p/1"}' "$GH"
expect 401 "github: no token" -X POST "${JSON[@]}" -d '{"state":"pending"}' "$GH"
expect 401 "github: wrong token" -X POST "${JSON[@]}" -H 'Authorization: Bearer X' -d '{"state":"pending"}' "$GH"
expect 401 "github: PRIVATE-TOKEN is not GitHub's header" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' -d '{"state":"pending"}' "$GH"
expect 404 "github: unknown repository" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"pending"}' "$URL/repos/acme/other/statuses/$SHA"
expect 422 "github: state 'failed' is GitLab's word" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"failed"}' "$GH"
expect 422 "github: 'name' is not a field" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"pending","name":"reeve/plan"}' "$GH"
expect 422 "github: description of 141 characters" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d "{\"state\":\"pending\",\"description\":\"$(long 141)\"}" "$GH"
expect 201 "github: description of 140 two-byte characters" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d "{\"state\":\"pending\",\"description\":\"$(long 140)\"}" "$GH"
expect 422 "github: context of 256 characters" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d "{\"state\":\"pending\",\"context\":\"$(long 256)\"}" "$GH"
expect 400 "github: malformed JSON" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' -d '{"state":' "$GH"
expect 422 "github: abbreviated sha" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"pending"}' "$URL/repos/acme/infra/statuses/0123456"
expect 403 "github: no User-Agent" -X POST "${JSON[@]}" -H 'User-Agent:' -H 'Authorization: Bearer T' \
    -d '{"state":"pending"}' "$GH"

start_fake gitea
GT="$URL/api/v1/repos/acme/infra/statuses/$SHA"
expect 201 "gitea accepts a documented status" -X POST "${JSON[@]}" -H 'Authorization: token T' \
    -d '{"state":"warning","context":"reeve/plan","description":"x"}' "$GT"
expect 401 "gitea: wrong token" -X POST "${JSON[@]}" -H 'Authorization: token X' -d '{"state":"pending"}' "$GT"
expect 422 "gitea: state 'failed'" -X POST "${JSON[@]}" -H 'Authorization: token T' -d '{"state":"failed"}' "$GT"
expect 422 "gitea: missing state" -X POST "${JSON[@]}" -H 'Authorization: token T' -d '{"context":"c"}' "$GT"
expect 404 "gitea: GitHub's path" -X POST "${JSON[@]}" -H 'Authorization: token T' \
    -d '{"state":"pending"}' "$URL/repos/acme/infra/statuses/$SHA"

start_fake gitlab --repo acme/infra=42
GL="$URL/api/v4/projects/acme%2Finfra/statuses/$SHA"
expect 201 "gitlab accepts a documented status" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"pending","name":"reeve/plan","description":"x"}' "$GL"
expect 400 "gitlab: pending again is refused" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"pending","name":"reeve/plan"}' "$GL"
expect 201 "gitlab: by numeric id" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"success","name":"reeve/plan"}' "$URL/api/v4/projects/42/statuses/$SHA"
expect 404 "gitlab: unencoded project path" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"pending"}' "$URL/api/v4/projects/acme/infra/statuses/$SHA"
expect 404 "gitlab: unknown project" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"pending"}' "$URL/api/v4/projects/acme%2Fother/statuses/$SHA"
expect 401 "gitlab: 'Authorization: token' is not GitLab's form" -X POST "${JSON[@]}" \
    -H 'Authorization: token T' -d '{"state":"pending"}' "$GL"
expect 400 "gitlab: state 'failure' is GitHub's word" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d '{"state":"failure","name":"n"}' "$GL"
expect 400 "gitlab: description of 256 characters" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d "{\"state\":\"success\",\"name\":\"d\",\"description\":\"$(long 256)\"}" "$GL"
expect 400 "gitlab: name of 256 characters" -X POST "${JSON[@]}" -H 'PRIVATE-TOKEN: T' \
    -d "{\"state\":\"success\",\"name\":\"$(long 256)\"}" "$GL"
expect 201 "gitlab: form-encoded body" -X POST -H 'PRIVATE-TOKEN: T' \
    --data-urlencode 'state=success' --data-urlencode 'name=form' "$GL"

start_fake github --fail-first 1 --rate-limit 0
expect 503 "fault: --fail-first answers 503" -X POST "${JSON[@]}" -H 'Authorization: Bearer T' \
    -d '{"state":"pending"}' "$URL/repos/acme/infra/statuses/$SHA"
start_fake github --rate-limit 30
expect 403 "fault: --rate-limit (github primary) answers 403" -X POST "${JSON[@]}" \
    -H 'Authorization: Bearer T' -d '{"state":"pending"}' "$URL/repos/acme/infra/statuses/$SHA"
if ! grep -qi 'rate limit exceeded' "$TMP/body"; then
    echo "not ok - rate-limit body"; FAILS=$((FAILS + 1))
fi
if [ "$FAILS" -ne 0 ]; then
    echo "t0300: $FAILS fake-forge checks failed" >&2
    exit 1
fi

echo "# part 2: the outbox against each fake"
REEVE_OUTBOX_E2E=1 timeout 180 "$DRIVER"
echo "t0300: ok"
