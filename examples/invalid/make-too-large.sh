#!/usr/bin/env bash
# make-too-large.sh DIR: write DIR/too-large.yaml, a well-formed cluster spec
# padded with comment lines to one byte over the 1 MiB spec file limit
# (RV_SPEC_FILE_MAX in lib/limits.h). It is generated rather than committed.
set -euo pipefail
dir=${1:?usage: make-too-large.sh DIR}
limit=$((1024 * 1024))
out="$dir/too-large.yaml"
{
    printf 'apiVersion: reeve/v1\nkind: DatabaseCluster\nmetadata:\n  name: billing\n'
    printf '  namespace: payments\nspec:\n  engine: postgresql\n  version: "16"\n'
    printf '  provider: local\n'
    line="# $(printf '%077d' 0)"
    for _ in $(seq 1 $((limit / 80 + 1))); do
        printf '%s\n' "$line"
    done
} >"$out"
truncate -s $((limit + 1)) "$out"
