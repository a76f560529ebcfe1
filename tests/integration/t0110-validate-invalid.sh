#!/usr/bin/env bash
# t0110: every case of the invalid corpus (examples/invalid, listed in
# cases.tsv) makes `reeve validate CASE` print exactly CASE's .expected file
# and exit with the listed code; a second run prints the same bytes. Hostile
# inputs (billion laughs, deep nesting, a file over 1 MiB...) must finish
# within the per-case timeout like any other case.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_env REEVE_BIN REEVE_SOURCE_DIR
need_cmd timeout diff

corpus="$REEVE_SOURCE_DIR/examples/invalid"
manifest="$corpus/cases.tsv"
[ -f "$manifest" ] || die "missing $manifest"
# Seconds one case may take; a parser that loops or expands without bound is
# killed here and the case fails.
case_timeout=10

# Work on a copy: the oversized case is generated, not committed.
work="$T_TMP/invalid"
cp -a "$corpus" "$work"
bash "$corpus/make-too-large.sh" "$work"

stem() {
    local c=${1%/}
    c=${c%.tf.json}
    c=${c%.yaml}
    printf '%s' "$c"
}

cases=()
codes=()
while IFS=$'\t' read -r name code _; do
    case $name in '' | '#'*) continue ;; esac
    cases+=("$name")
    codes+=("$code")
done <"$manifest"
[ "${#cases[@]}" -ge 30 ] || die "cases.tsv lists ${#cases[@]} cases; the corpus needs at least 30"

say "every case on disk is in cases.tsv and has an .expected file"
listed=" ${cases[*]} "
for f in "$corpus"/*; do
    b=$(basename "$f")
    case $b in
        README.md | cases.tsv | make-too-large.sh | *.expected) continue ;;
    esac
    [ -d "$f" ] && b="$b/"
    if [[ $listed != *" $b "* ]]; then
        fail "$b is in examples/invalid but not in cases.tsv"
    fi
done
for e in "$corpus"/*.expected; do
    s=$(basename "$e" .expected)
    found=0
    for c in "${cases[@]}"; do
        [ "$(stem "$c")" = "$s" ] && found=1
    done
    [ $found -eq 1 ] || fail "$(basename "$e") has no case in cases.tsv"
done
for c in "${cases[@]}"; do
    [ -f "$corpus/$(stem "$c").expected" ] || fail "$c has no $(stem "$c").expected"
done
[ "$T_FAILED" -eq 0 ] && ok "manifest, cases and .expected files match"

mkdir -p "$T_TMP/run1" "$T_TMP/run2"
run_case() { # CASE OUTDIR [OPTION...]: run one case in the work copy, keep stdout, stderr, exit code
    local c=$1 out=$2 s rc=0
    shift 2
    s=$(stem "$c")
    (cd "$work" && with_timeout "$case_timeout" "$REEVE_BIN" validate "$@" "$c") \
        >"$out/$s.out" 2>"$out/$s.err" || rc=$?
    echo "$rc" >"$out/$s.rc"
}

# plural N WORD: "1 error", "2 errors"
plural() { if [ "$1" -eq 1 ]; then echo "$1 $2"; else echo "$1 ${2}s"; fi; }

say "each case prints its .expected diagnostics and exits with its listed code"
for i in "${!cases[@]}"; do
    c=${cases[$i]}
    want_rc=${codes[$i]}
    s=$(stem "$c")
    run_case "$c" "$T_TMP/run1"
    rc=$(cat "$T_TMP/run1/$s.rc")
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$c: did not finish within ${case_timeout}s (killed)"
        continue
    fi
    if [ "$rc" -ne "$want_rc" ]; then
        fail "$c: exit $rc, expected $want_rc"
        sed 's/^/#   stderr: /' "$T_TMP/run1/$s.err"
        continue
    fi
    if ! diff -u "$corpus/$s.expected" "$T_TMP/run1/$s.out" >"$T_TMP/$s.diff"; then
        fail "$c: output differs from $s.expected (- expected, + actual)"
        tail -n +3 "$T_TMP/$s.diff" | sed 's/^/#   /'
        continue
    fi
    # stderr holds one summary line whose counts match the diagnostics
    errs=$(grep -c ': error: ' "$corpus/$s.expected" || true)
    warns=$(grep -c ': warning: ' "$corpus/$s.expected" || true)
    summary=$(cat "$T_TMP/run1/$s.err")
    if [[ $summary != *": $(plural "$errs" error), $(plural "$warns" warning)" ]]; then
        fail "$c: the summary on stderr does not count $errs errors and $warns warnings: '$summary'"
        continue
    fi
    ok "$c (exit $rc, $(wc -l <"$T_TMP/run1/$s.out") diagnostics)"
done

say "a second run, with --quiet, prints the same bytes and exit code and nothing on stderr"
same=0
for c in "${cases[@]}"; do
    s=$(stem "$c")
    run_case "$c" "$T_TMP/run2" --quiet
    if ! cmp -s "$T_TMP/run1/$s.out" "$T_TMP/run2/$s.out" ||
        ! cmp -s "$T_TMP/run1/$s.rc" "$T_TMP/run2/$s.rc"; then
        fail "$c: second run differs from the first"
    elif [ -s "$T_TMP/run2/$s.err" ]; then
        fail "$c: --quiet still prints on stderr: $(cat "$T_TMP/run2/$s.err")"
    else
        same=$((same + 1))
    fi
done
assert_eq "${#cases[@]}" "$same" "identical output on a second run for every case"

t_done
