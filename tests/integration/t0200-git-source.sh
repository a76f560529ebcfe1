#!/usr/bin/env bash
# t0200-git-source: the smart-HTTP git server other tests rely on
# (tests/integration/githttp.sh), checked with the git CLI as a reference
# client: anonymous clone, basic auth (right, wrong, missing credentials),
# two servers side by side, and a clean stop. reeve's own fetches over it are
# covered by unit.test_source. Bounded: every git call is under a timeout.
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR
need_cmd git lighttpd
. "$REEVE_SOURCE_DIR/tests/integration/githttp.sh"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1 HOME="$T_TMP/home"
mkdir -p "$HOME"
g() { with_timeout 20 git -c user.name=t -c user.email=t@example.invalid "$@"; }

# a served bare repository with main and a GitHub-style pull request ref
mkdir -p "$T_TMP/repos" "$T_TMP/work"
g init -q --bare -b main "$T_TMP/repos/specs.git"
g init -q -b main "$T_TMP/work"
mkdir -p "$T_TMP/work/clusters"
echo "a: 1" >"$T_TMP/work/clusters/a.yaml"
g -C "$T_TMP/work" add -A
g -C "$T_TMP/work" commit -q -m one
g -C "$T_TMP/work" push -q "$T_TMP/repos/specs.git" main main:refs/pull/7/head
main_sha=$(g -C "$T_TMP/work" rev-parse HEAD)

say "anonymous server"
githttp_start "$T_TMP/open" "$T_TMP/repos" || die "githttp_start failed"
at_exit githttp_stop "$T_TMP/open"
open_url=$GITHTTP_URL
case $open_url in
http://127.0.0.1:*) ok "listens on loopback ($open_url)" ;;
*) fail "unexpected url '$open_url'" ;;
esac
run g ls-remote "$open_url/specs.git"
assert_rc 0 "ls-remote over smart http"
case $RUN_OUT in
*"$main_sha	refs/heads/main"*"refs/pull/7/head"*) ok "advertises main and pull/7" ;;
*) fail "ls-remote output: $RUN_OUT" ;;
esac
run g clone -q "$open_url/specs.git" "$T_TMP/clone1"
assert_rc 0 "clone over smart http"
assert_eq "a: 1" "$(cat "$T_TMP/clone1/clusters/a.yaml" 2>/dev/null)" "cloned content"
run g ls-remote "$open_url/absent.git"
[ "$RUN_RC" -ne 0 ] && ok "missing repository is an error" || fail "absent.git was served"

say "server with basic auth, side by side with the first"
githttp_start "$T_TMP/auth" "$T_TMP/repos" reeve s3cret || die "githttp_start (auth) failed"
at_exit githttp_stop "$T_TMP/auth"
auth_url=$GITHTTP_URL
[ "$auth_url" != "$open_url" ] && ok "second server on its own port" || fail "same url twice"
hostport=${auth_url#http://}
run g ls-remote "$auth_url/specs.git"
[ "$RUN_RC" -ne 0 ] && ok "no credentials: refused" || fail "served without credentials"
start=$SECONDS
run g ls-remote "http://reeve:wrong@$hostport/specs.git"
[ "$RUN_RC" -ne 0 ] && ok "wrong password: refused" || fail "served with a wrong password"
[ $((SECONDS - start)) -lt 15 ] && ok "refusal is prompt" || fail "refusal took $((SECONDS - start))s"
run g ls-remote "http://reeve:s3cret@$hostport/specs.git"
assert_rc 0 "right password: served"
run g ls-remote "$open_url/specs.git"
assert_rc 0 "the anonymous server still answers"

say "stop"
pid=$(cat "$T_TMP/auth/pid")
githttp_stop "$T_TMP/auth"
if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
    fail "lighttpd $pid still running after stop"
else
    ok "stopped"
fi
run g ls-remote "http://reeve:s3cret@$hostport/specs.git"
[ "$RUN_RC" -ne 0 ] && ok "port closed after stop" || fail "still served after stop"
grep -q ' 401 ' "$T_TMP/auth/access.log" && ok "access log records the 401s" ||
    fail "no 401 in the access log"
githttp_stop "$T_TMP/auth" && ok "a second stop is harmless" || fail "second stop failed"

say "command form (used by tests written in C)"
url=$(bash "$REEVE_SOURCE_DIR/tests/integration/githttp.sh" start "$T_TMP/cmd" "$T_TMP/repos")
at_exit bash "$REEVE_SOURCE_DIR/tests/integration/githttp.sh" stop "$T_TMP/cmd"
run g ls-remote "$url/specs.git"
assert_rc 0 "command form serves"
bash "$REEVE_SOURCE_DIR/tests/integration/githttp.sh" stop "$T_TMP/cmd"
run g ls-remote "$url/specs.git"
[ "$RUN_RC" -ne 0 ] && ok "command form stops" || fail "still served after stop"

t_done
