#!/usr/bin/env bash
# githttp.sh - serve a directory of bare repositories over smart HTTP for tests:
# `git http-backend` as a CGI behind lighttpd on 127.0.0.1:<free port>,
# optionally behind HTTP basic auth.
#
# As a library (source it):
#   . tests/integration/githttp.sh
#   githttp_start STATE_DIR REPO_ROOT [USER PASSWORD]   # sets GITHTTP_URL, GITHTTP_PORT, GITHTTP_PID
#   git clone "$GITHTTP_URL/repo.git" ...
#   githttp_stop STATE_DIR
#
# As a command (for tests written in C):
#   githttp.sh start STATE_DIR REPO_ROOT [USER PASSWORD]   # prints the base URL
#   githttp.sh stop STATE_DIR
#
# Repositories are served as $URL/<path below REPO_ROOT>. STATE_DIR holds the
# config, logs and pid and may be removed after githttp_stop. Requests are
# logged to STATE_DIR/access.log (complete once the server is stopped), so a
# test can count them, e.g. how many 401s a client provoked. Every wait is
# bounded: start gives up after GITHTTP_START_TIMEOUT seconds (default 10),
# stop kills hard after GITHTTP_STOP_TIMEOUT seconds (default 5).

GITHTTP_BACKEND=${GITHTTP_BACKEND:-/usr/lib/git-core/git-http-backend}
GITHTTP_LIGHTTPD=${GITHTTP_LIGHTTPD:-$(command -v lighttpd || echo /usr/sbin/lighttpd)}

githttp_err() { echo "githttp: $*" >&2; }

# A process counts as alive until it has exited; a zombie (exited, not yet
# reaped by its parent) does not.
githttp_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# Probe the readiness file with bash's /dev/tcp (no curl needed); succeeds
# only when our own server answers with our own token.
githttp_probe() {
    local port=$1 token=$2 reply
    reply=$(
        exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET /probe.txt HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        timeout 2 cat <&3
    ) 2>/dev/null || return 1
    [[ $reply == *"$token"* ]]
}

githttp_write_config() {
    local state=$1 root=$2 port=$3 user=$4
    {
        echo 'server.modules = ("mod_alias", "mod_setenv", "mod_cgi", "mod_auth", "mod_authn_file", "mod_accesslog")'
        echo 'server.bind = "127.0.0.1"'
        echo "server.port = $port"
        echo "server.document-root = \"$state/www\""
        echo "server.errorlog = \"$state/error.log\""
        echo "accesslog.filename = \"$state/access.log\""
        echo "server.pid-file = \"$state/lighttpd.pid\""
        echo "server.upload-dirs = (\"$state/tmp\")"
        echo 'server.max-keep-alive-requests = 100'
        echo "alias.url = (\"/git\" => \"$GITHTTP_BACKEND\")"
        echo '$HTTP["url"] =~ "^/git(/|$)" {'
        echo '  cgi.assign = ("" => "")'
        echo "  setenv.set-environment = (\"GIT_PROJECT_ROOT\" => \"$root\", \"GIT_HTTP_EXPORT_ALL\" => \"1\")"
        echo '}'
        if [[ -n $user ]]; then
            echo 'auth.backend = "plain"'
            echo "auth.backend.plain.userfile = \"$state/users\""
            echo 'auth.require = ("/git" => ("method" => "basic", "realm" => "reeve-test", "require" => "valid-user"))'
        fi
    } >"$state/lighttpd.conf"
}

# githttp_start STATE_DIR REPO_ROOT [USER PASSWORD]
githttp_start() {
    local state=$1 root=$2 user=${3:-} password=${4:-}
    local limit=${GITHTTP_START_TIMEOUT:-10}
    if [[ -z $state || -z $root ]]; then
        githttp_err "usage: githttp_start STATE_DIR REPO_ROOT [USER PASSWORD]"
        return 2
    fi
    if [[ ! -x $GITHTTP_LIGHTTPD ]]; then
        githttp_err "lighttpd not found (install the Debian package 'lighttpd', see scripts/deps.sh)"
        return 3
    fi
    if [[ ! -x $GITHTTP_BACKEND ]]; then
        githttp_err "'$GITHTTP_BACKEND' not found (install the Debian package 'git')"
        return 3
    fi
    root=$(cd "$root" && pwd) || return 2
    mkdir -p "$state/www" "$state/tmp" || return 2
    state=$(cd "$state" && pwd) || return 2
    local token="githttp-$$-$RANDOM-$RANDOM"
    echo "$token" >"$state/www/probe.txt"
    if [[ -n $user ]]; then
        (umask 077 && printf '%s:%s\n' "$user" "$password" >"$state/users")
    fi

    local deadline=$((SECONDS + limit)) port pid
    while ((SECONDS < deadline)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        githttp_write_config "$state" "$root" "$port" "$user"
        "$GITHTTP_LIGHTTPD" -D -f "$state/lighttpd.conf" >>"$state/stdout.log" 2>&1 </dev/null &
        pid=$!
        # Wait for our token on this port, or for the server to die (port taken).
        while ((SECONDS < deadline)) && githttp_alive "$pid"; do
            if githttp_probe "$port" "$token"; then
                GITHTTP_PORT=$port
                GITHTTP_PID=$pid
                GITHTTP_URL="http://127.0.0.1:$port/git"
                echo "$pid" >"$state/pid"
                echo "$port" >"$state/port"
                echo "$GITHTTP_URL" >"$state/url"
                return 0
            fi
            sleep 0.05
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    githttp_err "lighttpd did not start within ${limit}s; see $state/error.log and $state/stdout.log"
    return 1
}

# githttp_stop STATE_DIR: stop the server started with this state dir.
githttp_stop() {
    local state=$1 pid limit=${GITHTTP_STOP_TIMEOUT:-5}
    [[ -f $state/pid ]] || return 0
    pid=$(<"$state/pid")
    rm -f "$state/pid"
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)) && githttp_alive "$pid"; do
        sleep 0.05
    done
    if githttp_alive "$pid"; then
        githttp_err "lighttpd ($pid) did not stop within ${limit}s; killing it"
        kill -9 "$pid" 2>/dev/null
    fi
    # Reap it when it is our own child (sourced use); harmless otherwise.
    wait "$pid" 2>/dev/null
    return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case ${1:-} in
    start)
        shift
        # Detach the server from our stdout so a caller reading it (popen) sees EOF.
        githttp_start "$@" >/dev/null || exit $?
        echo "$GITHTTP_URL"
        ;;
    stop)
        shift
        githttp_stop "$@"
        ;;
    *)
        githttp_err "usage: githttp.sh start STATE_DIR REPO_ROOT [USER PASSWORD] | stop STATE_DIR"
        exit 2
        ;;
    esac
fi
