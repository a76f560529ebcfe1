#!/usr/bin/env bash
# t0500-gitops-loop: the whole pull-request loop through `reeve serve`, for
# each forge (github, gitea, gitlab) and each Git transport (file:// and
# smart HTTP through githttp.sh), one combination after the other.
#
# Per combination: a bare repository holding examples/quickstart on main, the
# strict fake forge (tests/fakeforge/fakeforge.py) and `reeve serve` with
# pollInterval 0, so only webhooks (and the one fetch at start) drive it.
# Pull requests are simulated the way the forges store them: commits pushed
# to refs/pull/<n>/head (GitHub, Gitea) or refs/merge-requests/<n>/head
# (GitLab), announced by signed webhooks (tests/integration/gitops/webhook.py).
#
#   1. open PR 1 (payments/billing instances 3 -> 5): reeve/validate and
#      reeve/plan succeed on its head, linked to <publicURL>/plans/<sha>; the
#      plan page answers in HTML and JSON with the planner's summary
#   2. the same delivery again is a duplicate (200)
#   3. a commit making the spec invalid (instances 12): validate and plan fail
#      on the new head; the description names the file and the error
#   4. a fix (instances 4): both succeed again
#   5. a wrong signature (401) and a malformed body (400) for a new PR:
#      no fetch, no status
#   6. merge: main moves to a merge commit, push + PR merged webhooks:
#      reeve/apply pending on the merge commit
#   7. over the whole run: no status on a commit that is neither a PR head
#      nor a main commit; no secret in reeve's log
# First, two configuration checks: examples/reeve.yaml passes
# `reeve serve --check`, and so does a numeric GitLab project id.
#
# Bounded: every wait has a deadline (T0500_WAIT seconds per status, default
# 20); about 8 s per combination. T0500_KINDS and T0500_TRANSPORTS narrow the
# run, e.g. T0500_KINDS=gitlab T0500_TRANSPORTS=http.
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
need_cmd git curl jq python3
REEVE=${REEVE_BIN:-$REEVE_BUILD_DIR/reeve}
SRC=$REEVE_SOURCE_DIR
HERE=$SRC/tests/integration
FAKE=$SRC/tests/fakeforge/fakeforge.py
HOOK=$HERE/gitops/webhook.py
FAKEQ=$HERE/gitops/fakeq.py
[ -x "$REEVE" ] || die "no reeve binary at $REEVE (build first)"
"$REEVE" serve --help >/dev/null 2>&1 || die "'$REEVE serve --help' fails: this build has no 'reeve serve'"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
# shellcheck source=githttp.sh
. "$HERE/githttp.sh"

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME=dev GIT_AUTHOR_EMAIL=dev@example.com
export GIT_COMMITTER_NAME=dev GIT_COMMITTER_EMAIL=dev@example.com

PUBLIC=https://reeve.example.com   # never contacted: only the links' base
TOKEN=forge-token-$RANDOM$RANDOM
SECRET=hook-secret-$RANDOM$RANDOM$RANDOM
WAIT=${T0500_WAIT:-20}             # seconds to wait for one status
GITROOT=$T_TMP/git
mkdir -p "$GITROOT"

# --- processes: every one we start is stopped on exit --------------------
PIDS=()
stop_pid() { # PID [SECS]: TERM, bounded wait, then KILL; 1 if KILL was needed
    local pid=$1 secs=${2:-10} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        # a zombie is gone for our purposes
        [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) == Z ]] && break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 1
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}
# shellcheck disable=SC2317  # called through at_exit
stop_all() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p" 5 || true; done
    PIDS=()
    githttp_stop "$T_TMP/githttp" || true
}
at_exit stop_all

githttp_start "$T_TMP/githttp" "$GITROOT" >/dev/null || die "githttp did not start"

# --- helpers --------------------------------------------------------------
wait_file() { # FILE SECS
    local i
    for ((i = 0; i < $2 * 20; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done
    return 1
}

http_get() { # URL OUTFILE -> prints "CODE CONTENT_TYPE"
    curl -s --max-time 5 -o "$2" -w '%{http_code} %{content_type}' "$1" || echo "000 -"
}

metrics() { curl -s --max-time 5 "$R_URL/metrics" || true; }

# metric NAME [LABEL_SUBSTRING]: the sum of the samples of NAME (with that
# label text, e.g. 'result="duplicate"'); 0 when absent.
metric() {
    metrics | awk -v n="$1" -v l="${2:-}" '
        $1 == n || index($1, n "{") == 1 { if (l == "" || index($1, l) > 0) s += $NF }
        END { printf "%d\n", s }'
}

# fetch_metrics: the counters that move when reeve fetches and reconciles.
fetch_metrics() {
    metrics | grep -E '^(reeve_git_fetch_duration_seconds_count|reeve_git_fetch_failures_total|reeve_reconcile_passes_total)[ {]' || true
}

hook() { # ARGS... (webhook.py options after --kind/--secret) -> JSON line
    python3 "$HOOK" --url "$R_URL" --kind "$KIND" --secret "$SECRET" --repo acme/specs \
        --repo-id "$REPO_ID" "$@"
}

# wait_status SHA CONTEXT [STATES] -> the status JSON, or "" on timeout
wait_status() {
    python3 "$FAKEQ" "$F_URL" wait --sha "$1" --context "$2" ${3:+--states "$3"} \
        --timeout "$WAIT" 2>>"$D/fakeq.err" || true
}

fail_state() { if [ "$KIND" = gitlab ]; then echo failed; else echo failure; fi; }

# check_status JSON WANT_STATE WHAT: state, and the link to the plan page
check_status() {
    local js=$1 want=$2 what=$3 sha ctx state url
    if [ -z "$js" ]; then
        fail "$what: no final status within ${WAIT}s ($(tail -n 1 "$D/fakeq.err" 2>/dev/null | cut -c1-400))"
        return 0
    fi
    sha=$(jq -r .sha <<<"$js"); ctx=$(jq -r .context <<<"$js")
    state=$(jq -r .state <<<"$js"); url=$(jq -r .target_url <<<"$js")
    if [ "$state" = "$want" ]; then
        ok "$what: $ctx=$state on ${sha:0:12} ($(jq -r .description <<<"$js"))"
    else
        fail "$what: $ctx is '$state', expected '$want' (description: $(jq -r .description <<<"$js"))"
    fi
    assert_eq "$PUBLIC/plans/$sha" "$url" "$what: $ctx target_url is <publicURL>/plans/<sha>"
}

pr_ref() { # N
    if [ "$KIND" = gitlab ]; then echo "refs/merge-requests/$1/head"; else echo "refs/pull/$1/head"; fi
}

set_instances() { # N: payments/billing instances, committed on the current branch
    sed -i "s/^  instances: [0-9]*\$/  instances: $1/" "$W/clusters/payments/billing.yaml"
    git -C "$W" commit -q -am "payments/billing: $1 instances"
    git -C "$W" rev-parse HEAD
}

expect_hook() { # WANT_CODE WHAT JSON [BODY_SUBSTRING]
    local code body
    code=$(jq -r .status <<<"$3"); body=$(jq -r .body <<<"$3")
    if [ "$code" = "$1" ] && { [ -z "${4:-}" ] || [[ $body == *"$4"* ]]; }; then
        ok "$2: $code $body"
    else
        fail "$2: expected $1${4:+ '$4'}, got $code '$body'"
    fi
}

# --- one combination ------------------------------------------------------
scenario() {
    KIND=$1 TRANSPORT=$2
    D=$T_TMP/$KIND-$TRANSPORT
    W=$D/work
    local bare=$GITROOT/$KIND-$TRANSPORT.git t0=$SECONDS url project tokref hookref fmt
    mkdir -p "$D"
    say "---- $KIND over $TRANSPORT"

    # The spec repository: examples/quickstart on main.
    git init -q --bare -b main "$bare"
    git init -q -b main "$W"
    cp -R "$SRC/examples/quickstart/." "$W/"
    git -C "$W" add -A
    git -C "$W" commit -q -m "quickstart"
    git -C "$W" remote add origin "$bare"
    git -C "$W" push -q origin main
    local main0
    main0=$(git -C "$W" rev-parse HEAD)
    if [ "$TRANSPORT" = http ]; then url=$GITHTTP_URL/$KIND-$TRANSPORT.git; else url=file://$bare; fi

    # The fake forge.
    REPO_ID=42
    project=acme/specs
    [ "$KIND-$TRANSPORT" = gitlab-http ] && project='"42"'   # GitLab by numeric project id
    python3 "$FAKE" --kind "$KIND" --token "$TOKEN" --repo acme/specs=42 --port 0 \
        --port-file "$D/fake.port" 2>"$D/fake.log" &
    PIDS+=($!)
    local fake_pid=$!
    wait_file "$D/fake.port" 10 || { fail "$KIND/$TRANSPORT: fakeforge did not start"; return; }
    F_URL=http://127.0.0.1:$(tr -d '\n' <"$D/fake.port")

    # Secrets as env: and file: references.
    printf '%s' "$TOKEN" >"$D/forge-token"; printf '%s\n' "$SECRET" >"$D/hook-secret"
    chmod 600 "$D/forge-token" "$D/hook-secret"
    tokref=env:REEVE_FORGE_TOKEN hookref=env:REEVE_WEBHOOK_SECRET fmt=text
    case $KIND in
    gitea) hookref=file:$D/hook-secret fmt=json ;;
    gitlab) tokref=file:$D/forge-token ;;
    esac
    cat >"$D/reeve.yaml" <<EOF
listen: 127.0.0.1:0
publicURL: $PUBLIC
dataDir: $D/data
log: {level: info, format: $fmt}
repository:
  url: $url
  branch: main
  pollInterval: 0
  auth: {kind: none}
forge:
  kind: $KIND
  apiURL: $F_URL
  repository: $project
  tokenRef: $tokref
  webhookSecretRef: $hookref
ticks: {base: 10, fast: 1}
EOF
    REEVE_FORGE_TOKEN=$TOKEN REEVE_WEBHOOK_SECRET=$SECRET \
        "$REEVE" serve -c "$D/reeve.yaml" >"$D/reeve.out" 2>"$D/reeve.log" </dev/null &
    PIDS+=($!)
    local reeve_pid=$!
    if ! wait_file "$D/data/port" 10; then
        fail "$KIND/$TRANSPORT: reeve serve wrote no $D/data/port within 10s; log: $(tail -n 5 "$D/reeve.log" | tr '\n' '|')"
        return
    fi
    R_URL=http://127.0.0.1:$(tr -d '\n' <"$D/data/port")
    local code i js
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$R_URL/healthz" || true)
        [ "$code" = 200 ] && break
        sleep 0.05
    done
    assert_eq 200 "$code" "$KIND/$TRANSPORT: reeve serve is up, GET /healthz"
    [ "$code" = 200 ] || return
    js=$(python3 "$FAKEQ" "$F_URL" wait --sha "$main0" --context reeve/apply \
        --states pending,success,failure,error,failed,running --timeout "$WAIT" 2>>"$D/fakeq.err" || true)
    if [ -n "$js" ] && [ "$(jq -r .state <<<"$js")" = pending ]; then
        ok "$KIND/$TRANSPORT: fetch at start: reeve/apply pending on main ${main0:0:12} ($(jq -r .description <<<"$js"))"
    else
        fail "$KIND/$TRANSPORT: fetch at start: reeve/apply should be pending on main ${main0:0:12}; got: ${js:-nothing within ${WAIT}s}"
    fi

    # 1. Open pull request 1: billing 3 -> 5 instances.
    git -C "$W" checkout -q -b scale-billing
    local c1 c2 c3 merge
    c1=$(set_instances 5)
    git -C "$W" push -q origin "+HEAD:$(pr_ref 1)"
    local opened
    opened=$(hook --delivery "open-$KIND-$TRANSPORT-1" pr --action opened --number 1 \
        --head "$c1" --head-ref scale-billing --base-sha "$main0")
    expect_hook 202 "$KIND/$TRANSPORT: PR opened webhook" "$opened" accepted
    check_status "$(wait_status "$c1" reeve/validate)" success "$KIND/$TRANSPORT: PR opened"
    js=$(wait_status "$c1" reeve/plan)
    check_status "$js" success "$KIND/$TRANSPORT: PR opened"
    local desc
    desc=$(jq -r '.description // ""' <<<"${js:-null}")
    if [[ $desc == *"4 to add"* ]]; then
        ok "$KIND/$TRANSPORT: plan description gives the change: '$desc'"
    else
        fail "$KIND/$TRANSPORT: plan description should say '4 to add' (2 provision_instance + 2 add_replica): '$desc'"
    fi

    # The plan page, in HTML and JSON, against what `reeve plan` computes.
    local want_json want_sum want_ids got got_sum got_ids
    want_json=$("$REEVE" plan --repo "$W" --base main --head "$c1" --json 2>/dev/null || true)
    want_sum=$(jq -c '.summary | {add, change, destroy}' <<<"$want_json")
    want_ids=$(jq -c '[.actions[].id]' <<<"$want_json")
    got=$(http_get "$R_URL/plans/$c1" "$D/plan.html")
    if [[ $got == "200 text/html"* ]] && grep -q "$c1" "$D/plan.html" && grep -q billing "$D/plan.html"; then
        ok "$KIND/$TRANSPORT: GET /plans/<sha>: $got, names the commit and payments/billing"
    else
        fail "$KIND/$TRANSPORT: GET /plans/<sha>: '$got' (want 200 text/html naming the sha and billing): $(head -c 300 "$D/plan.html")"
    fi
    got=$(http_get "$R_URL/plans/$c1?format=json" "$D/plan.json")
    if [[ $got == "200 application/json"* ]] && jq -e . "$D/plan.json" >/dev/null 2>&1; then
        ok "$KIND/$TRANSPORT: GET /plans/<sha>?format=json: $got"
        got_sum=$(jq -c '.plan.summary | {add, change, destroy}' "$D/plan.json" 2>/dev/null || echo '?')
        got_ids=$(jq -c '[.plan.actions[].id]' "$D/plan.json" 2>/dev/null || echo '?')
        assert_eq '{"add":4,"change":0,"destroy":0}' "$got_sum" "$KIND/$TRANSPORT: plan JSON summary (3 -> 5: two instances, two replicas)"
        assert_eq "$want_sum" "$got_sum" "$KIND/$TRANSPORT: plan JSON summary equals 'reeve plan --base main --head <sha>'"
        assert_eq "$want_ids" "$got_ids" "$KIND/$TRANSPORT: plan JSON actions equal 'reeve plan'"
        assert_eq "$c1 $main0 1" "$(jq -r '"\(.sha) \(.base) \(.pull_request)"' "$D/plan.json")" \
            "$KIND/$TRANSPORT: plan JSON sha, base, pull_request"
        assert_eq object "$(jq -r '.validation | type' "$D/plan.json")" "$KIND/$TRANSPORT: plan JSON has a validation object"
    else
        fail "$KIND/$TRANSPORT: GET /plans/<sha>?format=json: '$got' (want 200 application/json): $(head -c 300 "$D/plan.json")"
    fi

    # 2. The same delivery again.
    local dup_before dup
    dup_before=$(metric reeve_webhooks_total 'result="duplicate"')
    dup=$(hook --delivery "open-$KIND-$TRANSPORT-1" pr --action opened --number 1 \
        --head "$c1" --head-ref scale-billing --base-sha "$main0")
    expect_hook 200 "$KIND/$TRANSPORT: same delivery id again" "$dup" duplicate
    assert_eq "$((dup_before + 1))" "$(metric reeve_webhooks_total 'result="duplicate"')" \
        "$KIND/$TRANSPORT: reeve_webhooks_total{result=\"duplicate\"} counts it"

    # 3. A commit that makes the spec invalid.
    c2=$(set_instances 12)
    git -C "$W" push -q origin "+HEAD:$(pr_ref 1)"
    expect_hook 202 "$KIND/$TRANSPORT: PR synchronize webhook (invalid spec)" \
        "$(hook pr --action synchronize --number 1 --head "$c2" --before "$c1" \
            --head-ref scale-billing --base-sha "$main0")" accepted
    js=$(wait_status "$c2" reeve/validate)
    check_status "$js" "$(fail_state)" "$KIND/$TRANSPORT: invalid spec"
    desc=$(jq -r '.description // ""' <<<"${js:-null}")
    if [[ $desc == *clusters/payments/billing.yaml* && $desc == *spec.instances* && $desc == *12* ]]; then
        ok "$KIND/$TRANSPORT: validate description names the file and the error"
    else
        fail "$KIND/$TRANSPORT: validate description should name clusters/payments/billing.yaml and 'spec.instances ... 12': '$desc'"
    fi
    check_status "$(wait_status "$c2" reeve/plan)" "$(fail_state)" "$KIND/$TRANSPORT: invalid spec"

    # 4. The fix: 4 instances.
    c3=$(set_instances 4)
    git -C "$W" push -q origin "+HEAD:$(pr_ref 1)"
    expect_hook 202 "$KIND/$TRANSPORT: PR synchronize webhook (fix)" \
        "$(hook pr --action synchronize --number 1 --head "$c3" --before "$c2" \
            --head-ref scale-billing --base-sha "$main0")" accepted
    check_status "$(wait_status "$c3" reeve/validate)" success "$KIND/$TRANSPORT: fixed"
    js=$(wait_status "$c3" reeve/plan)
    check_status "$js" success "$KIND/$TRANSPORT: fixed"
    desc=$(jq -r '.description // ""' <<<"${js:-null}")
    if [[ $desc == *"2 to add"* ]]; then
        ok "$KIND/$TRANSPORT: plan description after the fix: '$desc'"
    else
        fail "$KIND/$TRANSPORT: plan description after the fix should say '2 to add': '$desc'"
    fi

    # 5. A wrong signature and a malformed body, for a new pull request, at a
    # quiet moment (the fix's statuses are in, nothing else is scheduled).
    git -C "$W" checkout -q -b more-ledger "$main0"
    sed -i 's/"instances": 2,/"instances": 3,/' "$W/clusters/payments/ledger.tf.json"
    git -C "$W" commit -q -am "payments/ledger: 3 instances"
    local c4
    c4=$(git -C "$W" rev-parse HEAD)
    git -C "$W" push -q origin "+HEAD:$(pr_ref 2)"
    local before_fetch after_fetch n_before n_after acc_before acc_after rej_before mal_before i
    # Quiet means the counters have stopped moving: on a loaded machine a
    # pass scheduled by the fix's webhook may still be running.
    before_fetch=$(fetch_metrics)
    for ((i = 0; i < 10; i++)); do
        sleep 1.5
        after_fetch=$(fetch_metrics)
        [ "$after_fetch" = "$before_fetch" ] && break
        before_fetch=$after_fetch
    done
    n_before=$(python3 "$FAKEQ" "$F_URL" list | wc -l | tr -d ' ')
    acc_before=$(metric reeve_webhooks_total 'result="accepted"')
    rej_before=$(metric reeve_webhooks_total 'result="rejected"')
    mal_before=$(metric reeve_webhooks_total 'result="malformed"')
    expect_hook 401 "$KIND/$TRANSPORT: webhook with a wrong signature" \
        "$(hook --wrong-secret pr --action opened --number 2 --head "$c4" --head-ref more-ledger \
            --base-sha "$main0")"
    expect_hook 400 "$KIND/$TRANSPORT: signed webhook with a malformed body" \
        "$(hook raw --event "$( [ "$KIND" = gitlab ] && echo 'Merge Request Hook' || echo pull_request)" \
            --body '{"action": "opened", "number": ')"
    sleep 2   # a fetch, had one been scheduled, would have posted by now
    after_fetch=$(fetch_metrics)
    n_after=$(python3 "$FAKEQ" "$F_URL" list | wc -l | tr -d ' ')
    acc_after=$(metric reeve_webhooks_total 'result="accepted"')
    assert_eq "$n_before" "$n_after" "$KIND/$TRANSPORT: no new status after the refused webhooks"
    assert_eq "0" "$(python3 "$FAKEQ" "$F_URL" list --sha "$c4" | wc -l | tr -d ' ')" \
        "$KIND/$TRANSPORT: nothing posted on the refused PR's head"
    if [ "$(wc -l <<<"$before_fetch")" -ne 3 ]; then
        fail "$KIND/$TRANSPORT: /metrics lacks the fetch and reconcile counters: '$before_fetch'"
    else
        diff_text "$before_fetch" "$after_fetch" "$KIND/$TRANSPORT: no fetch, no reconcile pass (fetch and pass counters unchanged)"
    fi
    assert_eq "$acc_before" "$acc_after" "$KIND/$TRANSPORT: reeve_webhooks_total{result=\"accepted\"} unchanged"
    assert_eq "$((rej_before + 1))" "$(metric reeve_webhooks_total 'result="rejected"')" \
        "$KIND/$TRANSPORT: reeve_webhooks_total{result=\"rejected\"} counts the bad signature"
    assert_eq "$((mal_before + 1))" "$(metric reeve_webhooks_total 'result="malformed"')" \
        "$KIND/$TRANSPORT: reeve_webhooks_total{result=\"malformed\"} counts the malformed body"

    # The refused pull request never existed, as far as reeve may know.
    git -C "$W" push -q origin ":$(pr_ref 2)"

    # 6. Merge: main moves to a merge commit.
    git -C "$W" checkout -q main
    git -C "$W" merge -q --no-ff -m "Merge pull request #1 from acme/scale-billing" scale-billing
    merge=$(git -C "$W" rev-parse HEAD)
    git -C "$W" push -q origin main
    expect_hook 202 "$KIND/$TRANSPORT: push webhook for main" \
        "$(hook push --ref refs/heads/main --before "$main0" --after "$merge")" accepted
    expect_hook 202 "$KIND/$TRANSPORT: PR closed+merged webhook" \
        "$(hook pr --action closed --merged --merge-sha "$merge" --number 1 --head "$c3" \
            --head-ref scale-billing --base-sha "$main0")" accepted
    js=$(python3 "$FAKEQ" "$F_URL" wait --sha "$merge" --context reeve/apply \
        --states pending,success,failure,error,failed,running --timeout "$WAIT" 2>>"$D/fakeq.err" || true)
    if [ -n "$js" ] && [ "$(jq -r .state <<<"$js")" = pending ]; then
        ok "$KIND/$TRANSPORT: reeve/apply pending on the merge commit ${merge:0:12} ($(jq -r .description <<<"$js"))"
    else
        fail "$KIND/$TRANSPORT: reeve/apply should first be pending on the merge commit ${merge:0:12}; got: ${js:-nothing within ${WAIT}s}"
    fi

    # 7. Over the whole run.
    local bad
    bad=$(python3 "$FAKEQ" "$F_URL" list | jq -r --arg pr "$c1 $c2 $c3" --arg main "$main0 $merge" '
        select(.sha as $sha | if .context == "reeve/apply" then ($main | split(" ") | any(. == $sha) | not)
               else ($pr | split(" ") | any(. == $sha) | not) end)
        | "\(.context)=\(.state) on \(.sha)"')
    if [ -z "$bad" ]; then
        ok "$KIND/$TRANSPORT: validate/plan only on PR heads, apply only on main commits ($(python3 "$FAKEQ" "$F_URL" list | wc -l | tr -d ' ') statuses)"
    else
        fail "$KIND/$TRANSPORT: statuses on unexpected commits: $(tr '\n' ';' <<<"$bad")"
    fi
    local posted recorded again
    again=$(python3 "$FAKEQ" "$F_URL" list | wc -l | tr -d ' ')
    for ((i = 0; i < 20; i++)); do   # read both while nothing is being posted
        recorded=$again
        posted=$(metric reeve_statuses_posted_total)
        again=$(python3 "$FAKEQ" "$F_URL" list | wc -l | tr -d ' ')
        [ "$again" = "$recorded" ] && [ "$posted" = "$recorded" ] && break
        sleep 0.25
    done
    assert_eq "$recorded" "$posted" "$KIND/$TRANSPORT: reeve_statuses_posted_total equals what the forge recorded"

    if stop_pid "$reeve_pid" 10; then ok "$KIND/$TRANSPORT: reeve serve stops on SIGTERM"; else fail "$KIND/$TRANSPORT: reeve serve needed SIGKILL"; fi
    stop_pid "$fake_pid" 5 || true
    if [ -s "$D/reeve.log" ] || [ -s "$D/reeve.out" ]; then
        ok "$KIND/$TRANSPORT: reeve logged $(cat "$D/reeve.log" "$D/reeve.out" | wc -l | tr -d ' ') lines"
    else
        fail "$KIND/$TRANSPORT: reeve logged nothing at level info"
    fi
    if grep -qF -e "$TOKEN" -e "$SECRET" "$D/reeve.log" "$D/reeve.out"; then
        fail "$KIND/$TRANSPORT: a secret appears in reeve's log"
    else
        ok "$KIND/$TRANSPORT: no secret in reeve's log"
    fi
    if [ "$fmt" = json ]; then
        bad=$({ grep -v '^[[:space:]]*$' "$D/reeve.log" || true; } | while IFS= read -r line; do
            jq -e . >/dev/null 2>&1 <<<"$line" || printf '%s\n' "$line"; done | head -n 3)
        if [ -z "$bad" ]; then ok "$KIND/$TRANSPORT: log format json: every line is JSON"; else fail "$KIND/$TRANSPORT: log lines that are not JSON: $bad"; fi
    fi
    say "$KIND over $TRANSPORT: $((SECONDS - t0)) s"
}

say "---- configuration"
run "$REEVE" serve -c "$SRC/examples/reeve.yaml" --check
assert_rc 0 "examples/reeve.yaml passes 'reeve serve --check'"
# A GitLab project id is a number; written as one in YAML it must work too.
cat >"$T_TMP/gitlab-id.yaml" <<EOF
dataDir: $T_TMP/unused
repository: {url: file://$GITROOT/none.git, pollInterval: 0}
forge: {kind: gitlab, apiURL: http://127.0.0.1:9, repository: 42, tokenRef: env:REEVE_FORGE_TOKEN,
        webhookSecretRef: env:REEVE_WEBHOOK_SECRET}
EOF
run env REEVE_FORGE_TOKEN=t REEVE_WEBHOOK_SECRET=s "$REEVE" serve -c "$T_TMP/gitlab-id.yaml" --check
assert_rc 0 "forge.repository: 42 (an unquoted GitLab project id) is accepted"

for kind in ${T0500_KINDS:-github gitea gitlab}; do
    for transport in ${T0500_TRANSPORTS:-file http}; do
        scenario "$kind" "$transport"
    done
done
t_done
