#!/usr/bin/env bash
# t0810-pause-file: a clusters/<namespace>/PAUSED file on main pauses the
# namespace in `reeve serve`, with the test provider and no databases:
#
#   1. main holds payments/billing, search/index and clusters/payments/PAUSED:
#      search/index is provisioned, payments/billing is not, and reeve logs
#      the pause with the file's reason.
#   2. a commit deleting the file resumes: billing-0 is provisioned.
#
# Bounded: every wait has a deadline (T0810_WAIT seconds, default 30).
. "$(dirname "$0")/lib.sh"
need_cmd python3
WAIT=${T0810_WAIT:-30}
. "$(dirname "$0")/serve.sh"

# instance NAME: "1" when the test provider created it
instance() {
    python3 - "$D/provider.json" "$1" <<'EOF'
import json, sys
try:
    st = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(0); sys.exit()
print(int(any(i["name"] == sys.argv[2] for i in st.get("instances", {}).values())))
EOF
}

wait_instance() { # NAME SECS
    local i
    for ((i = 0; i < $2 * 4; i++)); do
        [ "$(instance "$1")" = 1 ] && return 0
        sleep 0.25
    done
    return 1
}

spec() { # NAMESPACE NAME
    cat <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata:
  name: $2
  namespace: $1
spec:
  engine: postgresql
  version: "16"
  provider: local
  region: local-1
EOF
}

mkdir -p "$D/specs/clusters/payments" "$D/specs/clusters/search"
spec payments billing >"$D/specs/clusters/payments/billing.yaml"
spec search index >"$D/specs/clusters/search/index.yaml"
printf 'quarter-end freeze (INC-4711)\nnot part of the reason\n' >"$D/specs/clusters/payments/PAUSED"
specs_commit "two clusters, payments paused"

serve_config
start_reeve
say "reeve serve at $R, log $D/reeve.log"

# --- 1. paused -------------------------------------------------------------
if wait_instance index-0 "$WAIT"; then
    ok "search/index is provisioned: other namespaces go on"
else
    fail "search/index was not provisioned within ${WAIT}s; log: $(tail -n 5 "$D/reeve.log")"
fi
sleep 3 # three ticks more for payments to (wrongly) start
assert_eq 0 "$(instance billing-0)" "payments/billing is not provisioned while clusters/payments/PAUSED is on main"
if grep -q "namespace payments: paused: clusters/payments/PAUSED (quarter-end freeze (INC-4711)); no new action starts there" "$D/reeve.log"; then
    ok "the log names the file and its first line as the reason"
else
    fail "no pause line in the log: $(grep -i paus "$D/reeve.log" | tail -n 3)"
fi

# --- 2. resumed ------------------------------------------------------------
git -C "$D/specs" rm -q clusters/payments/PAUSED
git -C "$D/specs" commit -qm "resume payments"
if wait_instance billing-0 "$WAIT"; then
    ok "deleting the file resumes: payments/billing is provisioned"
else
    fail "payments/billing was not provisioned within ${WAIT}s of the resume; log: $(tail -n 5 "$D/reeve.log")"
fi

stop_all
[ "$T_FAILED" = 0 ] || { say "reeve's log (warnings and errors):"; grep -E ' (warn|error) ' "$D/reeve.log" | tail -n 20 | sed 's/^/#   /'; }
t_done
