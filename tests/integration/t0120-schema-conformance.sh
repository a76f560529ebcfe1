#!/usr/bin/env bash
# t0120: reeve's verdicts agree with a reference JSON Schema validator.
#
# Every quickstart spec and policy and every case of the invalid corpus is
# turned into JSON documents (js-yaml with the YAML 1.2 core schema, one
# document at a time; *.tf.json as is) and checked by ajv (JSON Schema
# 2020-12, ajv-formats) against specs-schema/*.schema.json: cluster files with
# cluster.schema.json, *.tf.json with cluster.tf.schema.json, policies/ files
# with policy.schema.json. Then:
#   - quickstart: ajv accepts every document and `reeve validate` exits 0;
#   - a case marked `reject` in examples/invalid/cases.tsv: reeve rejects it
#     and so does the peer (every document of a single-file case);
#   - a case marked `accept`: the schema cannot see the problem (semantic,
#     cross-file, policy or loader-level checks; cases.tsv says why), so ajv
#     accepts every document while reeve still reports it.
# The peers come from tests/peers (npm ci from the committed lock file); when
# they cannot be installed this test fails, it never skips.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_env REEVE_BIN REEVE_SOURCE_DIR
need_cmd node timeout

src=$REEVE_SOURCE_DIR
peers="$src/tests/peers"
schemas="$src/specs-schema"
corpus="$src/examples/invalid"
quickstart="$src/examples/quickstart"

say "test peers (ajv-cli, ajv-formats, js-yaml) are installed in tests/peers"
peers_ready() {
    [ -x "$peers/node_modules/.bin/ajv" ] && [ -d "$peers/node_modules/ajv-formats" ] &&
        [ -d "$peers/node_modules/js-yaml" ]
}
if ! peers_ready; then
    say "installing them: scripts/test-peers.sh (npm ci)"
    bash "$src/scripts/test-peers.sh" || true
fi
peers_ready || die "the npm test peers are not installed in tests/peers/node_modules and 'npm ci' there failed (see above); schema conformance cannot be checked without ajv: run scripts/test-peers.sh with access to the npm registry"
ok "peers: ajv-cli $(node -p 'require(process.argv[1]).version' "$peers/node_modules/ajv-cli/package.json"), ajv $(node -p 'require(process.argv[1]).version' "$peers/node_modules/ajv/package.json"), js-yaml $(node -p 'require(process.argv[1]).version' "$peers/node_modules/js-yaml/package.json")"

# to-json.js LIST OUTDIR: LIST has "id<TAB>path" lines; each file becomes
# OUTDIR/<id>.<n>.json, one per document, and a line "id<TAB>ok<TAB>count" or
# "id<TAB>error<TAB>message" is printed. Files are decoded as strict UTF-8.
# Alias-expanded documents are walked with a node budget (the same bound as
# RV_DOC_NODES_MAX) so a billion-laughs file is refused instead of expanded.
cat >"$T_TMP/to-json.js" <<'EOF'
'use strict';
const fs = require('fs');
const yaml = require('js-yaml');
const NODES_MAX = 100000;
const [listFile, outDir] = process.argv.slice(2);

function checkSize(doc) {
  let n = 0;
  const stack = [doc];
  while (stack.length) {
    const v = stack.pop();
    if (++n > NODES_MAX) throw new Error(`more than ${NODES_MAX} nodes after alias expansion`);
    if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) stack.push(v[k]);
  }
}

for (const line of fs.readFileSync(listFile, 'utf8').split('\n')) {
  if (!line) continue;
  const [id, file] = line.split('\t');
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
    const docs = file.endsWith('.json') ? [JSON.parse(text)]
      : yaml.loadAll(text, null, { schema: yaml.CORE_SCHEMA, filename: file });
    docs.forEach((d, i) => {
      checkSize(d);
      fs.writeFileSync(`${outDir}/${id}.${i}.json`, JSON.stringify(d === undefined ? null : d));
    });
    console.log(`${id}\tok\t${docs.length}`);
  } catch (e) {
    console.log(`${id}\terror\t${String(e.message).split('\n')[0]}`);
  }
}
EOF

# Inputs: "id<TAB>schema<TAB>path<TAB>group", group = quickstart or a case.
inputs="$T_TMP/inputs.tsv"
: >"$inputs"
nid=0
add_input() { # SCHEMA PATH GROUP
    nid=$((nid + 1))
    printf 'f%03d\t%s\t%s\t%s\n' "$nid" "$1" "$2" "$3" >>"$inputs"
}
add_tree() { # ROOT GROUP: clusters/ and policies/ below ROOT
    local f
    while IFS= read -r f; do
        case $f in
            */policies/*) add_input policy "$f" "$2" ;;
            *.tf.json) add_input tf "$f" "$2" ;;
            *) add_input cluster "$f" "$2" ;;
        esac
    done < <(find "$1" -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.tf.json' \) | LC_ALL=C sort)
}
add_tree "$quickstart" quickstart

work="$T_TMP/invalid"
cp -a "$corpus" "$work"
bash "$corpus/make-too-large.sh" "$work"
cases=()
declare -A peer_want
while IFS=$'\t' read -r name _code peer _why; do
    case $name in '' | '#'*) continue ;; esac
    cases+=("$name")
    peer_want[$name]=$peer
    case $name in
        */) add_tree "$work/${name%/}" "$name" ;;
        *.tf.json) add_input tf "$work/$name" "$name" ;;
        *) add_input cluster "$work/$name" "$name" ;;
    esac
done <"$corpus/cases.tsv"
[ "${#cases[@]}" -gt 0 ] || die "no cases in $corpus/cases.tsv"

say "converting $nid files to JSON documents with js-yaml"
mkdir -p "$T_TMP/json"
cut -f1,3 "$inputs" >"$T_TMP/list"
(cd "$peers" && NODE_PATH="$peers/node_modules" with_timeout 120 node "$T_TMP/to-json.js" "$T_TMP/list" "$T_TMP/json") \
    >"$T_TMP/converted" || die "the js-yaml converter failed"
[ "$(wc -l <"$T_TMP/converted")" -eq "$nid" ] || die "the converter reported on $(wc -l <"$T_TMP/converted") of $nid files"

say "validating the documents with ajv against specs-schema/*.schema.json"
: >"$T_TMP/verdicts"
for schema in cluster tf policy; do
    docs=()
    while IFS=$'\t' read -r id s _; do
        [ "$s" = "$schema" ] || continue
        for d in "$T_TMP/json/$id".*.json; do
            [ -e "$d" ] && docs+=(-d "$d")
        done
    done <"$inputs"
    [ "${#docs[@]}" -gt 0 ] || continue
    case $schema in
        cluster) args=(-s "$schemas/cluster.schema.json") ;;
        tf) args=(-s "$schemas/cluster.tf.schema.json" -r "$schemas/cluster.schema.json") ;;
        policy) args=(-s "$schemas/policy.schema.json") ;;
    esac
    rc=0
    (cd "$peers" && with_timeout 120 ./node_modules/.bin/ajv validate --spec=draft2020 \
        -c ajv-formats --all-errors --errors=line "${args[@]}" "${docs[@]}") \
        >"$T_TMP/ajv-$schema.out" 2>"$T_TMP/ajv-$schema.err" || rc=$?
    [ "$rc" -le 1 ] || { cat "$T_TMP/ajv-$schema.err" >&2; die "ajv failed on the $schema schema (exit $rc)"; }
    cat "$T_TMP/ajv-$schema.out" "$T_TMP/ajv-$schema.err" |
        sed -E -n 's#^.*/json/(f[0-9]+)\.([0-9]+)\.json (valid|invalid)$#\1\t\2\t\3#p' >>"$T_TMP/verdicts"
    grep -q "" "$T_TMP/verdicts" || die "ajv printed no verdict for the $schema schema"
done

# peer_verdict GROUP: prints accept | reject-all | reject-some; what the peer
# rejected, and why, goes to $T_TMP/why (read it with peer_why).
peer_verdict() {
    local group=$1 id st cnt total=0 rejected=0 why=""
    while IFS=$'\t' read -r id _ path g; do
        [ "$g" = "$group" ] || continue
        IFS=$'\t' read -r _ st cnt <<<"$(grep -P "^$id\t" "$T_TMP/converted")"
        if [ "$st" = error ]; then
            total=$((total + 1))
            rejected=$((rejected + 1))
            why+="${path#"$work"/}: js-yaml/JSON: $cnt; "
            continue
        fi
        local i v
        for ((i = 0; i < cnt; i++)); do
            total=$((total + 1))
            v=$(awk -F'\t' -v id="$id" -v n="$i" '$1 == id && $2 == n { print $3 }' "$T_TMP/verdicts")
            [ -n "$v" ] || die "no ajv verdict for document $i of $path"
            if [ "$v" = invalid ]; then
                rejected=$((rejected + 1))
                why+="${path#"$work"/} document $((i + 1)): $(grep -h -A1 "/json/$id\.$i\.json invalid" \
                    "$T_TMP"/ajv-*.err | tail -n 1 | cut -c1-300); "
            fi
        done
    done <"$inputs"
    printf '%s\n' "$why" >"$T_TMP/why"
    if [ "$rejected" -eq 0 ]; then
        echo accept
    elif [ "$rejected" -eq "$total" ]; then
        echo reject-all
    else
        echo reject-some
    fi
}

say "quickstart: ajv accepts every document and reeve validate exits 0"
peer_why() { cat "$T_TMP/why"; }
v=$(peer_verdict quickstart)
if [ "$v" = accept ]; then
    ok "ajv accepts all $(grep -c $'\tquickstart$' "$inputs") quickstart files"
else
    fail "ajv rejects quickstart documents: $(peer_why)"
fi
run with_timeout 30 "$REEVE_BIN" validate "$quickstart"
assert_rc 0 "reeve validate examples/quickstart"

say "invalid corpus: reeve and ajv agree, except where cases.tsv says the schema cannot see it"
for c in "${cases[@]}"; do
    want=${peer_want[$c]}
    got=$(peer_verdict "$c")
    rc=0
    out=$(cd "$work" && with_timeout 10 "$REEVE_BIN" validate "$c" 2>/dev/null) || rc=$?
    case $want in
        reject)
            if [ "$rc" -ne 1 ]; then
                fail "$c: reeve exits $rc, expected 1 (rejected)"
            elif [ "$got" = accept ]; then
                fail "$c: reeve rejects it but ajv accepts it (schema and reeve disagree)"
            elif [ "$got" = reject-some ] && [[ $c != */ ]]; then
                fail "$c: ajv accepts some of its documents, reeve rejects each: $(peer_why)"
            else
                ok "$c: rejected by both"
            fi
            ;;
        accept)
            if [ "$got" != accept ]; then
                fail "$c: cases.tsv says only reeve can see this, but ajv rejects it too: $(peer_why)"
            elif [ "$rc" -eq 1 ] || { [ "$rc" -eq 0 ] && grep -q ': warning: ' <<<"$out"; }; then
                ok "$c: accepted by ajv, reported by reeve (exit $rc)"
            else
                fail "$c: ajv accepts it and reeve reports nothing (exit $rc)"
            fi
            ;;
        *) fail "$c: cases.tsv peer column must be 'reject' or 'accept', not '$want'" ;;
    esac
done

t_done
