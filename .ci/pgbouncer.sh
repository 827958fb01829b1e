#!/usr/bin/env bash
# PgBouncer in transaction pooling mode in front of the local PostgreSQL, for the tests that
# run queuelab through it (tests/store/test_pgbouncer.py). Installs Debian's pgbouncer if
# missing, starts it on 127.0.0.1:${PGBOUNCER_PORT:-6439} (reused if already answering there)
# and prints the URL to set as QUEUELAB_TEST_PGBOUNCER_URL.
set -euo pipefail
port="${PGBOUNCER_PORT:-6439}"
dir=/tmp/queuelab-pgbouncer

if ! command -v pgbouncer >/dev/null 2>&1; then
    echo "installing Debian's pgbouncer" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2
fi

if ! pg_isready -h 127.0.0.1 -p "$port" -q 2>/dev/null; then
    mkdir -p "$dir"
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
unix_socket_dir =
INI
    echo '"postgres" ""' > "$dir/users.txt"
    chown -R postgres "$dir"
    # PgBouncer refuses to run as root.
    su postgres -s /bin/sh -c "pgbouncer -d $dir/pgbouncer.ini" >&2
    for _ in $(seq 50); do
        pg_isready -h 127.0.0.1 -p "$port" -q 2>/dev/null && break
        sleep 0.1
    done
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$port/"
