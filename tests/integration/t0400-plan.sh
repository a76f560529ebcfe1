#!/usr/bin/env bash
# t0400: `reeve plan`. A new fleet (examples/quickstart, nothing running)
# gets every action and a summary line computed here from the spec files;
# --json is valid and its depends_on form a DAG in execution order; an
# observed file that matches the specs gives exit 0 "No changes."; a
# pull-request-like Git repository (main + a branch that changes instances)
# planned with --base/--head shows only that change; bad input exits 1.
. "$(dirname "$0")/lib.sh"
need_env REEVE_BIN REEVE_SOURCE_DIR
need_cmd python3 git

quickstart="$REEVE_SOURCE_DIR/examples/quickstart"
[ -d "$quickstart/clusters" ] || die "missing $quickstart/clusters"

# The cluster specs of a repository as JSON lines, read with a YAML library
# of its own (PyYAML, or js-yaml from tests/peers), not with reeve.
specs_json() {
    if python3 -c 'import yaml' 2>/dev/null; then
        python3 - "$1" <<'EOF'
import glob, json, os, sys, yaml
root = sys.argv[1]
for f in sorted(glob.glob(os.path.join(root, "clusters", "**", "*"), recursive=True)):
    if f.endswith((".yaml", ".yml")):
        for doc in yaml.safe_load_all(open(f)):
            if doc:
                print(json.dumps(doc["spec"]))
    elif f.endswith(".tf.json"):
        for block in json.load(open(f))["resource"]["reeve_database_cluster"].values():
            print(json.dumps(block))
EOF
    elif command -v node >/dev/null 2>&1 && [ -d "$REEVE_SOURCE_DIR/tests/peers/node_modules/js-yaml" ]; then
        NODE_PATH="$REEVE_SOURCE_DIR/tests/peers/node_modules" node - "$1" <<'EOF'
const fs = require("fs"), path = require("path"), yaml = require("js-yaml");
function walk(d) {
  return fs.readdirSync(d, {withFileTypes: true}).sort((a, b) => a.name < b.name ? -1 : 1)
    .flatMap(e => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
}
for (const f of walk(path.join(process.argv[2], "clusters"))) {
  if (/\.ya?ml$/.test(f)) {
    for (const doc of yaml.loadAll(fs.readFileSync(f, "utf8"))) if (doc) console.log(JSON.stringify(doc.spec));
  } else if (f.endsWith(".tf.json")) {
    for (const b of Object.values(JSON.parse(fs.readFileSync(f)).resource.reeve_database_cluster)) console.log(JSON.stringify(b));
  }
}
EOF
    else
        die "need PyYAML (python3-yaml) or js-yaml in tests/peers (scripts/test-peers.sh) to read specs"
    fi
}

# A new cluster of n instances takes n provision_instance, one bootstrap
# (or seed_from_backup), n-1 add_replica, configure_users when it has users
# and configure_backup when it has a backup section; ready is not counted.
expected_adds() {
    specs_json "$1" | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    s = json.loads(line)
    i = s.get("instances", 1)
    n += 2 * i + (1 if s.get("users") else 0) + (1 if "backup" in s else 0)
print(n)'
}

# Checks a --json plan: ids unique, every depends_on names an earlier action,
# summary counts match the actions, replicas wait for their primary. Prints
# "kind node" per action (for comparisons) or fails.
check_plan_json() {
    python3 - "$1" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
for k in ("base", "head", "observed_revision", "summary", "actions"):
    assert k in p, "missing key %s" % k
seen = {}
count = {"add": 0, "change": 0, "destroy": 0, "none": 0}
fields = ["id", "kind", "cluster", "node", "depends_on", "reason", "waits_for", "blocked",
          "idempotency_key", "change"]
for i, a in enumerate(p["actions"]):
    assert list(a.keys()) == fields, "fields of %s: %s" % (a.get("id"), list(a.keys()))
    assert a["id"] not in seen, "duplicate id " + a["id"]
    for d in a["depends_on"]:
        assert d in seen, "%s depends on %s, which is not before it" % (a["id"], d)
        assert p["actions"][seen[d]]["cluster"] == a["cluster"], "cross-cluster dependency"
    if a["kind"] == "add_replica":
        boots = [d for d in a["depends_on"]
                 if d.split("/")[2] in ("bootstrap_primary", "seed_from_backup")]
        assert boots or a["waits_for"], "%s does not wait for its primary" % a["id"]
    assert len(a["idempotency_key"]) == 64, "idempotency key of " + a["id"]
    seen[a["id"]] = i
    count[a["change"]] += 1
for k in ("add", "change", "destroy"):
    assert p["summary"][k] == count[k], "summary.%s is %d, actions say %d" % (k, p["summary"][k], count[k])
for a in p["actions"]:
    print(a["kind"], a["node"]) if a["node"] else print(a["kind"])
EOF
}

say "a new fleet: reeve plan --repo examples/quickstart"
want=$(expected_adds "$quickstart")
[ "$want" -gt 0 ] || die "no clusters found in $quickstart"
run timeout 30 "$REEVE_BIN" plan --repo "$quickstart"
assert_rc 2 "a plan with changes exits 2"
assert_eq "Plan: $want to add, 0 to change, 0 to destroy." "$(printf '%s\n' "$RUN_OUT" | tail -n 1)" \
    "the last line counts every action of the new fleet"
case $RUN_OUT in
    *"+ bootstrap_primary billing-0"*"+ add_replica billing-1"*"+ add_replica billing-2"*) ok "text shows billing's primary before its replicas" ;;
    *) fail "text lacks billing's bootstrap and replicas in order" ;;
esac

say "reeve plan --json: valid, depends_on in execution order"
run timeout 30 "$REEVE_BIN" plan --repo "$quickstart" --json
assert_rc 2 "--json exits 2 too"
printf '%s\n' "$RUN_OUT" >"$T_TMP/new.json"
if outline=$(check_plan_json "$T_TMP/new.json" 2>"$T_TMP/check.err"); then
    ok "plan JSON checks out ($(printf '%s\n' "$outline" | wc -l) actions)"
else
    fail "plan JSON: $(cat "$T_TMP/check.err")"
fi
got=$(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
a = {x["id"]: x for x in p["actions"]}
print(",".join(sorted(a["payments/billing/add_replica/2"]["depends_on"])))
print(",".join(sorted(a["payments/billing/ready"]["depends_on"])))
print(p["summary"]["add"], p["observed_revision"], p["base"], p["head"])' "$T_TMP/new.json")
diff_text "payments/billing/bootstrap_primary/0,payments/billing/provision_instance/2
payments/billing/configure_backup,payments/billing/configure_users
$want none None None" "$got" "billing's replica waits for its primary and instance; ready waits for configuration"

say "the same plan twice is byte-identical"
run timeout 30 "$REEVE_BIN" plan --repo "$quickstart" --json
diff_text "$(cat "$T_TMP/new.json")" "$RUN_OUT" "deterministic JSON"

say "an observed file that matches the specs: exit 0, No changes."
specs="$T_TMP/specs"
mkdir -p "$specs/clusters/shop"
cat >"$specs/clusters/shop/orders.yaml" <<'EOF'
apiVersion: reeve/v1
kind: DatabaseCluster
metadata: {name: orders, namespace: shop}
spec:
  engine: postgresql
  version: "16"
  provider: local
  region: local-1
  instances: 2
  resources: {cpu: 2, memoryMiB: 4096, storageGiB: 20}
  parameters: {max_connections: "200", work_mem: "8MB"}
  users:
    - {name: orders_app, roles: [readwrite], passwordRef: "env:ORDERS_APP_PASSWORD"}
EOF
observed_for() { # instances healthy nodes as the orders spec says, $1 = max_connections on node 1
    cat <<EOF
{
  "revision": "42",
  "instances": [
    {"provider": "local", "id": "i-0", "cluster": "shop/orders", "node": "orders-0", "address": "127.0.2.1", "state": "running"},
    {"provider": "local", "id": "i-1", "cluster": "shop/orders", "node": "orders-1", "address": "127.0.2.2", "state": "running"}
  ],
  "nodes": [
    {"cluster": "shop/orders", "node": "orders-0", "role": "primary", "engine": "postgresql", "version": "16.4",
     "healthy": true, "parameters": {"max_connections": "200", "work_mem": "8MB"},
     "resources": {"cpu": 2, "memoryMiB": 4096, "storageGiB": 20}, "lastReport": "2026-11-21T05:00:00Z"},
    {"cluster": "shop/orders", "node": "orders-1", "role": "replica", "engine": "postgresql", "version": "16.4",
     "healthy": true, "lagBytes": 0, "parameters": {"max_connections": "$1", "work_mem": "8MB"},
     "resources": {"cpu": 2, "memoryMiB": 4096, "storageGiB": 20}, "lastReport": "2026-11-21T05:00:00Z"}
  ],
  "clusters": [{"cluster": "shop/orders", "users": ["orders_app"], "backupDigest": null}]
}
EOF
}
observed_for 200 >"$T_TMP/match.json"
run timeout 30 "$REEVE_BIN" plan --repo "$specs" --observed "$T_TMP/match.json" --now 2026-11-21T05:00:10Z
assert_rc 0 "nothing to do exits 0"
case $RUN_OUT in
    *"No changes."*) ok "says No changes." ;;
    *) fail "expected 'No changes.', got: $RUN_OUT" ;;
esac
run timeout 30 "$REEVE_BIN" plan --repo "$specs" --observed - --json <"$T_TMP/match.json"
assert_rc 0 "observed state from stdin"
got=$(printf '%s\n' "$RUN_OUT" | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["observed_revision"], len(p["actions"]))')
assert_eq "42 0" "$got" "the plan carries the observed revision and no actions"

say "one replica still runs an old restart-only value: a restart of that node only"
observed_for 100 >"$T_TMP/drift.json"
run timeout 30 "$REEVE_BIN" plan --repo "$specs" --observed "$T_TMP/drift.json" --now 2026-11-21T05:00:10Z
assert_rc 2 "drift is a change"
case $RUN_OUT in
    *"~ configure_parameters (max_connections 100 → 200 [restart])"*"~ restart_node orders-1"*)
        ok "parameters written, then the replica restarted" ;;
    *) fail "expected configure_parameters and a restart of orders-1, got: $RUN_OUT" ;;
esac
case $RUN_OUT in
    *"switchover"*|*"restart_node orders-0"*) fail "the primary already runs the value: $RUN_OUT" ;;
    *) ok "the primary is left alone" ;;
esac
assert_eq "Plan: 0 to add, 2 to change, 0 to destroy." "$(printf '%s\n' "$RUN_OUT" | tail -n 1)" \
    "two changes"

say "bad input exits 1 with a message that names the problem"
sed 's/"lagBytes"/"lagbytes"/' "$T_TMP/match.json" >"$T_TMP/typo.json"
run timeout 30 "$REEVE_BIN" plan --repo "$specs" --observed "$T_TMP/typo.json"
assert_rc 1 "an unknown field in the observed state"
case $RUN_ERR in
    *"nodes[1].lagbytes: unknown field; did you mean 'lagBytes'?"*) ok "names the field and suggests" ;;
    *) fail "unexpected message: $RUN_ERR" ;;
esac
mkdir -p "$T_TMP/bad/clusters"
printf 'apiVersion: reeve/v1\nkind: DatabaseCluster\nmetadata: {name: x, namespace: y}\nspec: {engine: oracle}\n' \
    >"$T_TMP/bad/clusters/x.yaml"
run timeout 30 "$REEVE_BIN" plan --repo "$T_TMP/bad"
assert_rc 1 "invalid specs"
case $RUN_ERR in
    *"clusters/x.yaml:"*"error"*) ok "prints the spec diagnostics" ;;
    *) fail "expected diagnostics on stderr, got: $RUN_ERR" ;;
esac
run timeout 30 "$REEVE_BIN" plan --bogus
assert_rc 1 "an unknown option"

say "a pull request: --base main --head a branch that adds a replica"
export GIT_CONFIG_NOSYSTEM=1 HOME="$T_TMP"
pr="$T_TMP/pr"
mkdir -p "$pr"
cp -r "$specs/clusters" "$pr/"
git -C "$pr" init -q -b main
git -C "$pr" add -A
git -C "$pr" -c user.name=t -c user.email=t@example.invalid commit -q -m "orders: 2 instances"
git -C "$pr" checkout -q -b more-replicas
sed -i 's/instances: 2/instances: 3/' "$pr/clusters/shop/orders.yaml"
git -C "$pr" -c user.name=t -c user.email=t@example.invalid commit -q -am "orders: 3 instances"
git -C "$pr" checkout -q main
# main moves on after the branch was made; the plan compares with the merge base
printf 'apiVersion: reeve/v1\nkind: DatabaseCluster\nmetadata: {name: other, namespace: shop}\nspec: {engine: postgresql, version: "16", provider: local}\n' \
    >"$pr/clusters/shop/other.yaml"
git -C "$pr" add -A
git -C "$pr" -c user.name=t -c user.email=t@example.invalid commit -q -m "other"

run timeout 30 "$REEVE_BIN" plan --repo "$pr" --base main --head more-replicas --json
assert_rc 2 "the branch changes something"
printf '%s\n' "$RUN_OUT" >"$T_TMP/pr.json"
if outline=$(check_plan_json "$T_TMP/pr.json" 2>"$T_TMP/check.err"); then
    diff_text "provision_instance orders-2
add_replica orders-2
ready" "$outline" "only the new replica is planned"
else
    fail "plan JSON: $(cat "$T_TMP/check.err")"
fi
got=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["base"], p["head"])' "$T_TMP/pr.json")
want="$(git -C "$pr" merge-base main more-replicas) $(git -C "$pr" rev-parse more-replicas)"
assert_eq "$want" "$got" "base is the merge base, head the branch"

run timeout 30 "$REEVE_BIN" plan --repo "$pr" --base main --head more-replicas
assert_eq "Plan: 2 to add, 0 to change, 0 to destroy." "$(printf '%s\n' "$RUN_OUT" | tail -n 1)" \
    "text summary of the pull request"
run timeout 30 "$REEVE_BIN" plan --repo "$pr" --base main --head main
assert_rc 0 "a branch against itself has no changes"
run timeout 30 "$REEVE_BIN" plan --repo "$specs" --base main
assert_rc 1 "--base on a folder that is not a git repository"
case $RUN_ERR in
    *"is not a git repository"*) ok "says why" ;;
    *) fail "unexpected message: $RUN_ERR" ;;
esac

say "the sample observed state: blocked deletion, rolling upgrade"
run timeout 30 "$REEVE_BIN" plan --repo "$quickstart" --observed "$REEVE_SOURCE_DIR/examples/observed/fleet.json" \
    --now 2026-11-21T05:00:10Z
assert_rc 2 "changes"
case $RUN_OUT in
    *"- decommission"*"! blocked: deletionProtection is true"*) ok "deleting a protected cluster is blocked" ;;
    *) fail "expected a blocked decommission of payments/legacy, got: $RUN_OUT" ;;
esac
case $RUN_OUT in
    *"~ upgrade_replica billing-1"*"~ upgrade_replica billing-2"*"~ switchover billing-1"*"~ upgrade_node billing-0"*)
        ok "billing upgrades replicas first, switches over, then the old primary" ;;
    *) fail "expected billing's rolling upgrade" ;;
esac

t_done
