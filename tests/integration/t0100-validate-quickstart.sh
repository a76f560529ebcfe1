#!/usr/bin/env bash
# t0100: the quickstart repository (examples/quickstart) is valid: `reeve
# validate` exits 0 and prints no diagnostic, from inside the repository and
# from outside it; `--json` is well-formed and lists exactly the quickstart's
# clusters and policies.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_env REEVE_BIN REEVE_SOURCE_DIR
need_cmd python3

repo="$REEVE_SOURCE_DIR/examples/quickstart"
[ -d "$repo/clusters" ] || die "missing $repo/clusters"

say "reeve validate examples/quickstart: exit 0, no diagnostics"
run timeout 30 "$REEVE_BIN" validate "$repo"
assert_rc 0 "validate the quickstart by path"
diff_text "" "$RUN_OUT" "no diagnostics on stdout"
case $RUN_ERR in
    *" 0 errors, 0 warnings"*) ok "summary on stderr: $RUN_ERR" ;;
    *) fail "summary on stderr should report 0 errors, 0 warnings: '$RUN_ERR'" ;;
esac

say "reeve validate with no PATH, inside the repository"
run bash -c 'cd "$1" && exec timeout 30 "$2" validate --quiet' _ "$repo" "$REEVE_BIN"
assert_rc 0 "validate the current directory"
diff_text "" "$RUN_OUT$RUN_ERR" "--quiet prints nothing for a valid repository"

say "reeve validate --json lists the quickstart's clusters and policies"
run timeout 30 "$REEVE_BIN" validate --json "$repo"
assert_rc 0 "validate --json"
printf '%s\n' "$RUN_OUT" >"$T_TMP/report.json"
got=$(python3 - "$T_TMP/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["valid"] is True, "valid is not true"
assert r["errors"] == 0 and r["warnings"] == 0, "errors/warnings are not 0"
assert r["diagnostics"] == [], "diagnostics is not empty"
for c in r["clusters"]:
    print("cluster %s/%s %s %s %d %s" % (c["namespace"], c["name"], c["engine"], c["version"],
                                        c["instances"], c["file"]))
for p in r["policies"]:
    print("policy %s %s %s" % (p["name"], ",".join(p["namespaces"]), p["file"]))
print("files %d" % r["files"])
EOF
) || fail "--json output is not the expected JSON report (see above)"
want="cluster analytics/billing-snapshot postgresql 16 1 clusters/analytics/billing-snapshot.yaml
cluster analytics/events mariadb 11.4 2 clusters/analytics/events.yaml
cluster analytics/warehouse postgresql 17 2 clusters/analytics/warehouse.yaml
cluster identity/accounts mariadb 10.11 3 clusters/identity/accounts.yaml
cluster identity/sessions postgresql 16 2 clusters/identity/sessions.yaml
cluster payments/billing postgresql 16 3 clusters/payments/billing.yaml
cluster payments/ledger postgresql 15 2 clusters/payments/ledger.tf.json
policy analytics analytics policies/analytics.yaml
policy baseline * policies/baseline.yaml
policy identity identity policies/identity.yaml
policy payments payments policies/payments.yaml
files 11"
diff_text "$want" "$got" "--json: 7 clusters (one from Terraform JSON), 4 policies, 11 files"

say "every quickstart file is also valid on its own (no hidden dependency between files)"
n=0
while IFS= read -r f; do
    run timeout 30 "$REEVE_BIN" validate --quiet "$f"
    if [ "$RUN_RC" -ne 0 ] || grep -q ': error: ' <<<"$RUN_OUT"; then
        fail "${f#"$repo"/}: exit $RUN_RC: $RUN_OUT"
    fi
    n=$((n + 1))
done < <(find "$repo/clusters" "$repo/policies" -type f \( -name '*.yaml' -o -name '*.tf.json' \) | LC_ALL=C sort)
[ "$T_FAILED" -eq 0 ] && ok "$n files validate one by one"

t_done
