#!/usr/bin/env bash
# Make a PostgreSQL server available on 127.0.0.1 with the project's role and databases, without Docker.
#
#   deploy/local/postgres.sh [database ...]   # default: loyalty_points loyalty_rewards loyalty_tiers
#
# Uses a server that already answers on 127.0.0.1:$POSTGRES_PORT; otherwise starts (or creates) the
# Debian cluster, installing PostgreSQL with apt when it is missing (root only). Safe to run repeatedly.
#
# Environment: POSTGRES_PORT (5432), LOYALTY_DB_USER (loyalty), LOYALTY_DB_PASSWORD (loyalty),
# POSTGRES_MAX_CONNECTIONS (300, the minimum the tests and benchmarks need).
set -euo pipefail

PORT="${POSTGRES_PORT:-5432}"
DB_USER="${LOYALTY_DB_USER:-loyalty}"
DB_PASSWORD="${LOYALTY_DB_PASSWORD:-loyalty}"
MIN_CONNECTIONS="${POSTGRES_MAX_CONNECTIONS:-300}"
if (($# > 0)); then DATABASES=("$@"); else DATABASES=(loyalty_points loyalty_rewards loyalty_tiers); fi

# A caller's libpq settings must not redirect the superuser or the checks to another server.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSFILE PGSSLMODE

say() { echo "postgres.sh: $*"; }
die() { echo "postgres.sh: $*" >&2; exit 1; }

for name in "$DB_USER" "${DATABASES[@]}"; do
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "'$name' is not a plain lower-case SQL identifier"
done
SQL_PASSWORD="${DB_PASSWORD//\'/\'\'}"

is_root() { [[ "$(id -u)" == 0 ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

server_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p "$PORT"
    else
        port_open
    fi
}

wait_up() {
    local i
    for ((i = 0; i < 60; i++)); do
        server_up && return 0
        sleep 0.5
    done
    return 1
}

# psql as the postgres superuser over the local socket (peer auth), from / so postgres can read the cwd.
as_postgres() {
    if [[ "$(id -un)" == postgres ]]; then
        (cd / && psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@")
    else
        (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@")
    fi
}

have_superuser() {
    command -v psql >/dev/null 2>&1 || return 1
    if [[ "$(id -un)" != postgres ]]; then
        is_root && command -v runuser >/dev/null 2>&1 && id postgres >/dev/null 2>&1 || return 1
    fi
    [[ "$(as_postgres -Atc 'select 1' 2>/dev/null)" == 1 ]]
}

sql_value() { as_postgres -Atc "$1"; }

login_works() {
    PGPASSWORD="$DB_PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" \
        -d "$1" -Atc 'select 1' >/dev/null 2>&1
}

install_postgres() {
    if ! is_root; then
        die "PostgreSQL is not installed. Run as root: apt-get update && apt-get install -y postgresql
(then run this script again), or use Docker: docker compose -f deploy/compose.yaml up postgres"
    fi
    say "installing PostgreSQL with apt"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
}

# Prints "<version> <name>" of the Debian cluster on $PORT, if any.
cluster_on_port() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    pg_lsclusters --no-header 2>/dev/null | awk -v port="$PORT" '$3 == port { print $1, $2; found = 1; exit } END { exit !found }'
}

start_local_cluster() {
    local cluster version name
    if ! cluster="$(cluster_on_port)"; then
        if pg_lsclusters --no-header 2>/dev/null | grep -q .; then
            pg_lsclusters >&2
            die "no PostgreSQL cluster is configured for port $PORT (see above); set POSTGRES_PORT or create one"
        fi
        is_root || die "no PostgreSQL cluster exists; as root run: pg_createcluster <version> main -p $PORT"
        version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
        say "creating cluster $version/main on port $PORT"
        pg_createcluster "$version" main -p "$PORT" >/dev/null
        cluster="$version main"
    fi
    read -r version name <<<"$cluster"
    if ! server_up; then
        is_root || [[ "$(id -un)" == postgres ]] \
            || die "PostgreSQL $version/$name is down; as root run: pg_ctlcluster $version $name start"
        say "starting cluster $version/$name"
        pg_ctlcluster "$version" "$name" start
    fi
}

restart_local_cluster() {
    local cluster version name
    if cluster="$(cluster_on_port)"; then
        read -r version name <<<"$cluster"
        say "restarting cluster $version/$name to apply: $*"
        pg_ctlcluster "$version" "$name" restart
        wait_up || die "PostgreSQL did not come back after the restart (see /var/log/postgresql/)"
    else
        say "WARNING: restart the server on port $PORT yourself to apply: $*"
    fi
}

# Server settings that only take effect after a restart.
ensure_server_settings() {
    local pending=() value
    value="$(sql_value 'show max_connections')"
    if ((value < MIN_CONNECTIONS)); then
        sql_value "alter system set max_connections = $MIN_CONNECTIONS" >/dev/null
        pending+=("max_connections=$MIN_CONNECTIONS (was $value)")
    fi
    value="$(sql_value 'show listen_addresses')"
    if [[ ! "$value" =~ (^|,)[[:space:]]*(\*|localhost|127\.0\.0\.1|0\.0\.0\.0)[[:space:]]*(,|$) ]]; then
        sql_value "alter system set listen_addresses = 'localhost'" >/dev/null
        pending+=("listen_addresses=localhost (was '$value')")
    fi
    if ((${#pending[@]})); then restart_local_cluster "${pending[*]}"; fi
    # On a cluster that listens on loopback only, TLS protects nothing and costs CPU on every round trip of
    # both ends (asyncpg uses it whenever the server offers it). A reload applies it.
    value="$(sql_value 'show listen_addresses')"
    if [[ "$value" =~ ^[[:space:]]*(localhost|127\.0\.0\.1)[[:space:]]*$ && "$(sql_value 'show ssl')" == "on" ]]; then
        say "turning TLS off (loopback only)"
        sql_value "alter system set ssl = off" >/dev/null
        sql_value "select pg_reload_conf()" >/dev/null
    fi
}

ensure_role() {
    local attrs
    attrs="$(sql_value "select rolcanlogin::text || ' ' || rolcreatedb::text from pg_roles where rolname = '$DB_USER'")"
    if [[ -z "$attrs" ]]; then
        say "creating role $DB_USER"
        sql_value "create role $DB_USER login createdb password '$SQL_PASSWORD'" >/dev/null
    elif [[ "$attrs" != "true true" ]]; then
        say "granting LOGIN CREATEDB to $DB_USER"
        sql_value "alter role $DB_USER login createdb" >/dev/null
    fi
}

ensure_databases() {
    local db owner out
    for db in "${DATABASES[@]}"; do
        owner="$(sql_value "select pg_get_userbyid(datdba) from pg_database where datname = '$db'")"
        if [[ -z "$owner" ]]; then
            say "creating database $db"
            # Another process may create it between the check and here; that is fine.
            if ! out="$(sql_value "create database $db owner $DB_USER" 2>&1)"; then
                [[ "$out" == *"already exists"* ]] || die "creating database $db failed: $out"
            fi
        elif [[ "$owner" != "$DB_USER" ]]; then
            say "database $db belongs to $owner; giving it to $DB_USER"
            sql_value "alter database $db owner to $DB_USER" >/dev/null
        fi
    done
}

# The password is only (re)set when logging in with it fails, so reruns change nothing.
ensure_password_login() {
    local db="${DATABASES[0]}"
    login_works "$db" && return 0
    say "setting the password of $DB_USER"
    sql_value "alter role $DB_USER password '$SQL_PASSWORD'" >/dev/null
    login_works "$db" && return 0
    die "$DB_USER still cannot log in over TCP with its password; check the 'host' lines for 127.0.0.1 in $(sql_value 'show hba_file') (scram-sha-256 or md5 expected)"
}

main() {
    if server_up; then
        say "a server already answers on 127.0.0.1:$PORT; using it"
        command -v psql >/dev/null 2>&1 || {
            is_root || die "psql is missing; as root run: apt-get install -y postgresql-client"
            apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-client
        }
    else
        if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then install_postgres; fi
        start_local_cluster
        wait_up || die "PostgreSQL does not answer on 127.0.0.1:$PORT (see /var/log/postgresql/)"
    fi

    if have_superuser; then
        ensure_server_settings
        ensure_role
        ensure_databases
        ensure_password_login
    else
        say "cannot act as the postgres superuser here; only checking what $DB_USER can reach"
    fi

    local db missing=()
    for db in "${DATABASES[@]}"; do
        login_works "$db" || missing+=("$db")
    done
    if ((${#missing[@]})); then
        die "$DB_USER/$DB_PASSWORD cannot connect on 127.0.0.1:$PORT to: ${missing[*]}. As a superuser:
  CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';   -- if the role is missing
$(for db in "${missing[@]}"; do echo "  CREATE DATABASE $db OWNER $DB_USER;"; done)"
    fi
    local conns
    conns="$(PGPASSWORD="$DB_PASSWORD" psql -X -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "${DATABASES[0]}" -Atc 'show max_connections')"
    if ((conns < MIN_CONNECTIONS)); then
        say "WARNING: max_connections is $conns; the test suite and benchmarks want at least $MIN_CONNECTIONS"
    fi
    say "ready: postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/{$(IFS=,; echo "${DATABASES[*]}")} (max_connections=$conns)"
}

main
