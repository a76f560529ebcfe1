#!/usr/bin/env bash
# gen-params.sh - regenerate the parameter catalogs that `reeve validate`
# checks spec.parameters against:
#   specs-schema/params_pg15.inc       from PostgreSQL 15's pg_settings
#   specs-schema/params_mariadb1011.inc from MariaDB 10.11's
#                                       information_schema.SYSTEM_VARIABLES
# Run by hand (as root, on a machine with postgresql-15 and mariadb-server
# 10.11 installed), then commit the two files. Each server is a throwaway:
# initialised in a temporary directory, listening on a loopback address and
# its own socket directory, and removed afterwards. Nothing else on the
# machine is read or changed.
#
# Usage: scripts/gen-params.sh [OUTDIR]   (default: specs-schema/ of this tree)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/specs-schema}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
mdb_sbin=${MDB_SBIN:-/usr/sbin}
mdb_bin=${MDB_BIN:-/usr/bin}
addr=127.0.77.1
pg_port=55777
mdb_port=55778

[ "$(id -u)" -eq 0 ] || { echo "gen-params.sh: run as root (the servers run as postgres and mysql)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "gen-params.sh: python3 is needed to write the tables" >&2; exit 1; }

work=$(mktemp -d /tmp/reeve-gen-params-XXXXXX)
chmod 755 "$work"
pg_pid=""
mdb_pid=""
cleanup() {
    if [ -n "$pg_pid" ]; then
        su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $work/pg -m immediate stop" >/dev/null 2>&1 || true
    fi
    if [ -n "$mdb_pid" ]; then
        kill "$mdb_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$mdb_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$mdb_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- PostgreSQL 15 -----------------------------------------------------------
mkdir -p "$work/pg" "$work/pgsock"
chown postgres: "$work/pg" "$work/pgsock"
su postgres -s /bin/sh -c "$pg_bin/initdb -D $work/pg -A trust -U postgres" >"$work/initdb.log" 2>&1
su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $work/pg -w -t 30 -l $work/pgsock/pg.log \
    -o \"-c listen_addresses=$addr -p $pg_port -k $work/pgsock\" start" >/dev/null
pg_pid=started
pg_version=$(su postgres -s /bin/sh -c "$pg_bin/psql -X -At -h $work/pgsock -p $pg_port -U postgres \
    -c 'SHOW server_version'")
case $pg_version in 15.*) ;; *) echo "gen-params.sh: expected PostgreSQL 15, got $pg_version" >&2; exit 1 ;; esac
su postgres -s /bin/sh -c "$pg_bin/psql -X -At -F '	' -h $work/pgsock -p $pg_port -U postgres -c \
    \"SELECT name, vartype, coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''),
            coalesce(array_to_string(enumvals, ','), ''), context
       FROM pg_settings ORDER BY name\"" >"$work/pg.tsv"

# --- MariaDB 10.11 -----------------------------------------------------------
mkdir -p "$work/mdb" "$work/mdbsock"
chown mysql: "$work/mdb" "$work/mdbsock"
"$mdb_bin/mariadb-install-db" --no-defaults --user=mysql --datadir="$work/mdb" \
    --auth-root-authentication-method=socket --skip-test-db >"$work/install.log" 2>&1
"$mdb_sbin/mariadbd" --no-defaults --user=mysql --datadir="$work/mdb" \
    --socket="$work/mdbsock/m.sock" --port=$mdb_port --bind-address=$addr \
    --pid-file="$work/mdbsock/m.pid" --log-error="$work/mdbsock/mdb.log" &
mdb_pid=$!
for _ in $(seq 150); do
    [ -S "$work/mdbsock/m.sock" ] && break
    sleep 0.2
done
mdb() { "$mdb_bin/mariadb" --no-defaults -uroot --socket="$work/mdbsock/m.sock" -N -B -e "$1"; }
mdb_version=$(mdb 'SELECT VERSION()')
case $mdb_version in 10.11.*) ;; *) echo "gen-params.sh: expected MariaDB 10.11, got $mdb_version" >&2; exit 1 ;; esac
mdb "SELECT LOWER(VARIABLE_NAME), VARIABLE_TYPE, COALESCE(NUMERIC_MIN_VALUE, ''),
            COALESCE(NUMERIC_MAX_VALUE, ''), COALESCE(ENUM_VALUE_LIST, ''), READ_ONLY,
            VARIABLE_SCOPE, IF(COMMAND_LINE_ARGUMENT IS NULL, 'NONE', 'YES')
       FROM information_schema.SYSTEM_VARIABLES ORDER BY 1" >"$work/mdb.tsv"

# --- the tables ----------------------------------------------------------------
python3 - "$work/pg.tsv" "$work/mdb.tsv" "$out" "$pg_version" "$mdb_version" <<'PY'
import sys

pg_tsv, mdb_tsv, out, pg_version, mdb_version = sys.argv[1:6]

# Names reeve itself sets (reeve.conf / reeve.cnf, replication, access):
# the union of what the agents' apply_parameters refuse and what reeve
# derives from other spec fields.
PG_MANAGED = {
    "listen_addresses", "port", "unix_socket_directories", "unix_socket_permissions",
    "unix_socket_group", "primary_conninfo", "primary_slot_name", "archive_command",
    "archive_mode", "archive_library", "restore_command", "recovery_target",
    "recovery_target_action", "recovery_target_inclusive", "recovery_target_lsn",
    "recovery_target_name", "recovery_target_time", "recovery_target_timeline",
    "recovery_target_xid",
    "synchronous_standby_names", "hba_file", "ident_file", "data_directory",
    "config_file", "wal_level", "hot_standby", "wal_log_hints", "cluster_name",
}
# ALTER SYSTEM refuses these (GUC_DISALLOW_IN_FILE): per-session only.
PG_SESSION = {
    "role", "session_authorization", "seed", "transaction_isolation",
    "transaction_read_only", "transaction_deferrable",
}
MDB_MANAGED = {
    "basedir", "bind_address", "binlog_format", "datadir", "gtid_domain_id",
    "gtid_slave_pos", "gtid_strict_mode", "log_bin", "log_bin_basename",
    "log_bin_index", "log_error", "log_slave_updates", "pid_file", "plugin_dir",
    "port", "read_only", "relay_log", "relay_log_index", "report_host", "report_port",
    "rpl_semi_sync_master_enabled", "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_master_wait_point", "rpl_semi_sync_slave_enabled", "server_id",
    "skip_name_resolve", "skip_networking", "socket", "tmpdir", "slave_net_timeout",
}

def cstr(s):
    if s is None or s == "":
        return "NULL"
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

def num(s):
    return s if s != "" else "0"

def emit(path, header, rows):
    with open(path, "w") as f:
        f.write(header)
        # C's binary search compares lowercase names byte by byte
        for r in sorted(rows, key=lambda r: r[0][1:-1].lower()):
            f.write("    {%s, %s, %s, %s, %s, %s, %s, %s},\n" % r)

def pg_rows():
    types = {"bool": "PARAM_BOOL", "integer": "PARAM_INT", "real": "PARAM_REAL",
             "string": "PARAM_STRING", "enum": "PARAM_ENUM"}
    rows = []
    for line in open(pg_tsv):
        name, vtype, unit, lo, hi, enums, context = line.rstrip("\n").split("\t")
        if name in PG_MANAGED:
            how = "PARAM_MANAGED"
        elif context == "internal":
            how = "PARAM_FIXED"
        elif name in PG_SESSION:
            how = "PARAM_SESSION"
        elif context == "postmaster":
            how = "PARAM_RESTART"
        else:
            how = "PARAM_RELOAD"
        if vtype == "integer":
            lo_s, hi_s, rlo, rhi = lo, hi, "0", "0"
            assert int(hi) >= 0
        elif vtype == "real":
            lo_s, hi_s, rlo, rhi = "0", "0", lo, hi
        else:
            lo_s = hi_s = rlo = rhi = "0"
        rows.append((cstr(name), types[vtype], cstr(unit), num(lo_s), num(hi_s) + "u",
                     "%s, %s" % (num(rlo), num(rhi)), cstr(enums), how))
    return rows

def mdb_rows():
    types = {"BOOLEAN": "PARAM_BOOL", "INT": "PARAM_INT", "INT UNSIGNED": "PARAM_INT",
             "BIGINT": "PARAM_INT", "BIGINT UNSIGNED": "PARAM_INT", "DOUBLE": "PARAM_REAL",
             "ENUM": "PARAM_ENUM", "SET": "PARAM_SET", "FLAGSET": "PARAM_FLAGSET",
             "VARCHAR": "PARAM_STRING"}
    rows = []
    for line in open(mdb_tsv):
        name, vtype, lo, hi, enums, ro, scope, cmdline = line.rstrip("\n").split("\t")
        t = types.get(vtype, "PARAM_STRING")
        if name in MDB_MANAGED:
            how = "PARAM_MANAGED"
        elif scope == "SESSION ONLY":
            how = "PARAM_SESSION"
        elif cmdline == "NONE" and ro == "YES":
            how = "PARAM_FIXED"  # a status value (version, have_ssl, hostname...)
        elif ro == "YES":
            how = "PARAM_RESTART"
        else:
            how = "PARAM_RELOAD"
        if t == "PARAM_INT":
            ilo, ihi, rlo, rhi = num(lo), num(hi), "0", "0"
            if "." in ilo or "." in ihi:
                ilo, ihi = str(int(float(ilo))), str(int(float(ihi)))
            assert int(ihi) >= 0 and int(ilo) <= 2**63 - 1
            if int(ilo) <= -2**63:
                ilo = "INT64_MIN"
        elif t == "PARAM_REAL":
            ilo, ihi, rlo, rhi = "0", "0", num(lo), num(hi)
        else:
            ilo = ihi = rlo = rhi = "0"
        rows.append((cstr(name), t, "NULL", ilo, ihi + "u", "%s, %s" % (rlo, rhi),
                     cstr(enums), how))
    return rows

head = """/* %s - generated by scripts/gen-params.sh from %s %s; do not edit.
 * One row per parameter, sorted by name (lowercase):
 * {name, type, unit, int min, int max, real min, real max, enum values, how it applies} */
"""
emit(out + "/params_pg15.inc", head % ("params_pg15.inc", "PostgreSQL", pg_version), pg_rows())
emit(out + "/params_mariadb1011.inc",
     head % ("params_mariadb1011.inc", "MariaDB", mdb_version), mdb_rows())
PY
echo "gen-params.sh: wrote $out/params_pg15.inc (PostgreSQL $pg_version) and $out/params_mariadb1011.inc (MariaDB $mdb_version)"
