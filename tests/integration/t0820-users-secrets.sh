#!/usr/bin/env bash
# t0820-users-secrets: a cluster's users and their password references
# through `reeve serve`, without PostgreSQL (docs/users.md):
#
#   1. reeve serve creates its seal key pair on first start and serves the
#      public key at GET /api/v1/seal-key (the same line as seal.pub).
#   2. a spec with a user whose passwordRef is env:NAME: the agent
#      configuration carries the user with the password and a users digest.
#   3. `reeve seal` with the key from the API, for another cluster: the
#      configuration route answers 409 with the plain reason, not the value.
#   4. sealed for the right cluster (`reeve seal --server`, the key fetched
#      from reeve): the configuration carries the opened
#      password; the users digest changed.
#   5. no password is in reeve's log or output, nor in state.db.
#   6. with seal.pub gone, reeve serve refuses to start, and says why.
#
# Bounded: every wait has a deadline (T0820_WAIT seconds, default 30).
. "$(dirname "$0")/lib.sh"
need_cmd curl jq sqlite3 sha256sum
WAIT=${T0820_WAIT:-30}
. "$(dirname "$0")/serve.sh"
"$REEVE" seal --help >/dev/null 2>&1 || die "this build has no 'reeve seal'"

PW_ENV='env-Pa55-t0820-q7'
PW_SEALED='sealed-Pa55-t0820-z9'
export RV_T0820_APP_PW=$PW_ENV

spec() { # PASSWORD_REF_OF_REPORTER
    cat <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: billing
  namespace: payments
spec:
  engine: postgresql
  version: "16"
  provider: local
  users:
    - name: billing_app
      roles: [readwrite]
      passwordRef: "env:RV_T0820_APP_PW"
EOF
    if [ -n "$1" ]; then
        cat <<EOF
    - name: billing_report
      roles: [readonly]
      passwordRef: "$1"
EOF
    fi
}

# --- the spec repository and reeve.yaml ----------------------------------
mkdir -p "$D/specs/clusters/payments"
spec "" >"$D/specs/clusters/payments/billing.yaml"
specs_commit "billing with one user"
serve_config

# --- 1. the key pair and the seal-key route -------------------------------
start_reeve
wait_healthy || die "reeve serve did not answer /healthz within ${WAIT}s"
[ -s "$D/data/seal.key" ] && [ -s "$D/data/seal.pub" ] &&
    ok "the first start created seal.key and seal.pub" || fail "no seal key pair in dataDir"
assert_eq 600 "$(stat -c %a "$D/data/seal.key")" "seal.key is private (0600)"
curl -s --max-time 5 "$R/api/v1/seal-key" >"$D/seal.pub.api"
assert_eq "$(cat "$D/data/seal.pub")" "$(cat "$D/seal.pub.api")" \
    "GET /api/v1/seal-key answers the public key line of seal.pub"
case $(cat "$D/seal.pub.api") in
reeve-seal-v1\ *) ok "the line is 'reeve-seal-v1 <base64>'" ;;
*) fail "unexpected public key line: $(cat "$D/seal.pub.api")" ;;
esac
stop_all

# --- an agent token, put straight into the DCS while reeve is stopped ----
TOK=$(printf 'agent-t0820' | sha256sum | cut -c1-64)
add_agent_token "$TOK" payments billing billing-0
start_reeve
say "reeve serve at $R"

config() { # -> $CODE, $BODY
    CODE=$(curl -s --max-time 10 -o "$D/.body" -w '%{http_code}' \
        -H "Authorization: Bearer $TOK" "$R/v1/agents/config" || echo 000)
    BODY=$(cat "$D/.body" 2>/dev/null || true)
}
wait_config() { # CODE JQ_FILTER: until the answer has CODE and the filter is true
    local i
    for ((i = 0; i < WAIT * 4; i++)); do
        config
        [ "$CODE" = "$1" ] && [ "$(jq -r "$2" <<<"$BODY" 2>/dev/null)" = true ] && return 0
        sleep 0.25
    done
    return 1
}

# --- 2. env: ------------------------------------------------------------
wait_config 200 '.users | length == 1' || fail "no configuration with one user (last: $CODE $BODY)"
assert_eq "billing_app readwrite $PW_ENV" \
    "$(jq -r '.users[0] | "\(.name) \(.roles | join(",")) \(.password)"' <<<"$BODY")" \
    "the configuration carries the user and its password from env:"
assert_eq 64 "$(jq -r '.users_digest | length' <<<"$BODY")" "and the digest of the set"
DIGEST1=$(jq -r .users_digest <<<"$BODY")

# --- 3. sealed for another cluster: 409 with the reason ------------------
WRONG=$(printf '%s' "$PW_SEALED" | "$REEVE" seal --cluster payments/ledger --key "$D/seal.pub.api")
spec "$WRONG" >"$D/specs/clusters/payments/billing.yaml"
git -C "$D/specs" commit -qam "a second user, sealed for the wrong cluster"
wait_config 409 'has("error")' || fail "no 409 for a value sealed for another cluster (last: $CODE $BODY)"
assert_eq "the password of user 'billing_report' of payments/billing: the sealed value does not open for payments/billing: it was sealed for another cluster or another reconciler's key, or was modified; seal it again with reeve seal --cluster payments/billing" \
    "$(jq -r .error <<<"$BODY")" "the configuration route says why, plainly"

# --- 4. sealed for this cluster -------------------------------------------
# (with the key fetched by `reeve seal --server` itself this time)
RIGHT=$(printf '%s' "$PW_SEALED" | "$REEVE" seal --cluster payments/billing --server "$R")
spec "$RIGHT" >"$D/specs/clusters/payments/billing.yaml"
git -C "$D/specs" commit -qam "sealed again, for payments/billing"
wait_config 200 '.users | length == 2' || fail "no configuration with two users (last: $CODE $BODY)"
assert_eq "$PW_SEALED" "$(jq -r '.users[] | select(.name == "billing_report") | .password' <<<"$BODY")" \
    "the sealed password is opened into the configuration"
[ "$(jq -r .users_digest <<<"$BODY")" != "$DIGEST1" ] &&
    ok "the users digest changed with the set" || fail "the users digest did not change"

# --- 5. never in the log, the output or state.db -------------------------
stop_all
found=
for f in "$D/reeve.log" "$D/reeve.out" "$D/data/state.db" "$D/data/state.db-wal"; do
    [ -e "$f" ] || continue
    if grep -q -a -e "$PW_ENV" -e "$PW_SEALED" "$f"; then found="$found $f"; fi
done
[ -z "$found" ] && ok "no password in reeve's log, its output or state.db" ||
    fail "a password was found in:$found"
grep -q -a "env:RV_T0820_APP_PW" "$D/data/state.db" "$D/data/state.db-wal" 2>/dev/null &&
    ok "state.db holds the references" || fail "the references are not in state.db (the search looked in the wrong place)"

# --- 6. one half of the key pair -----------------------------------------
mv "$D/data/seal.pub" "$D/seal.pub.saved"
rm -f "$D/data/port"
if with_timeout 20 "$REEVE" serve -c "$D/reeve.yaml" >"$D/half.out" 2>"$D/half.log" </dev/null; then
    fail "reeve serve started with only seal.key"
else
    ok "reeve serve refuses to start with only seal.key"
fi
grep -q "seal" "$D/half.log" && ok "and says so: $(grep -m1 seal "$D/half.log")" ||
    fail "no word about the seal key: $(tail -n 3 "$D/half.log")"
[ -s "$D/seal.pub.saved" ] && [ ! -e "$D/data/seal.pub" ] &&
    ok "no new key pair was made" || fail "a new seal.pub appeared"

t_done
