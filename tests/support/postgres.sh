# A throwaway PostgreSQL server for the test suite. Sourced by tests/run.sh (POSIX sh):
#
#   . tests/support/postgres.sh
#   trap pg_stop EXIT
#   pg_start || ...        # sets and exports EMBUDO_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT
#   pg_stop                # stops it and removes its directory; safe to call twice
#
# With pg_durable=1 set before pg_start, the server syncs its writes as a production one
# does (the bench measures that); by default it does not (the tests' data is thrown
# away).
#
# The server lives in a fresh temporary directory (data, socket, log), listens on a free
# port of 127.0.0.1 only, trusts every local connection and never fsyncs: it holds
# nothing worth keeping, and is gone when pg_stop returns. Debian's postgresql package
# is installed when no initdb/pg_ctl can be found. initdb and pg_ctl refuse to run as
# root, so as root they run as the `postgres` user, who then owns the directory.

pg_dir=""
pg_bin=""
pg_durable=${pg_durable:-0}

# The directory holding initdb and pg_ctl: on PATH, else the newest Debian install.
pg_find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Installs Debian's postgresql quietly, without the "main" cluster its package would
# otherwise create and start on port 5432: the tests need only the binaries.
pg_install() {
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo -n true 2>/dev/null || { echo "postgres.sh: not root and no passwordless sudo to install PostgreSQL" >&2; return 1; }
        sudo="sudo -n"
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "postgres.sh: no apt-get to install PostgreSQL with" >&2; return 1; }
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get -qq update >/dev/null || return 1
    $sudo apt-get -qq install -y postgresql-common >/dev/null || return 1
    if [ -f /etc/postgresql-common/createcluster.conf ]; then
        $sudo sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
    fi
    $sudo apt-get -qq install -y postgresql >/dev/null
}

# Runs a PostgreSQL program as the owner of the data directory.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A TCP port nothing listens on now (python3 is there: the SMTP tests need it).
pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_start() {
    pg_bin=$(pg_find_bin) || { pg_install && pg_bin=$(pg_find_bin); } || {
        echo "postgres.sh: PostgreSQL is not installed and could not be installed (apt-get install postgresql)" >&2
        return 1
    }
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "postgres.sh: running as root, and there is no 'postgres' user to run the server as" >&2
        return 1
    fi
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/embudo-test-pg.XXXXXX")
    chmod 700 "$pg_dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pg_dir"; fi
    if ! pg_as_owner "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$pg_dir/initdb.log" 2>&1; then
        cat "$pg_dir/initdb.log" >&2
        echo "postgres.sh: initdb failed" >&2
        return 1
    fi
    nosync="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if [ "$pg_durable" = 1 ]; then nosync=""; fi
    # A port can be taken between choosing and binding it: try a few.
    for attempt in 1 2 3; do
        port=$(pg_free_port)
        if pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir $nosync -c max_connections=300" \
            start >/dev/null 2>&1; then
            break
        fi
        port=""
    done
    if [ -z "$port" ]; then
        cat "$pg_dir/server.log" >&2 2>/dev/null
        echo "postgres.sh: the server did not start" >&2
        return 1
    fi
    isready="$pg_bin/pg_isready"
    [ -x "$isready" ] || isready=pg_isready
    tries=0
    until "$isready" -q -h 127.0.0.1 -p "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 120 ]; then
            echo "postgres.sh: the server on port $port is not ready after 60 s" >&2
            return 1
        fi
        sleep 0.5
    done
    EMBUDO_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port"
    export EMBUDO_TEST_POSTGRES
}

# Stops the server (immediately: its data is thrown away) and removes its directory.
pg_stop() {
    [ -n "$pg_dir" ] || return 0
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
        pg_as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || {
            # pg_ctl could not stop it: the postmaster we started, by its pid.
            pid=$(head -n 1 "$pg_dir/data/postmaster.pid" 2>/dev/null)
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
        }
    fi
    rm -rf "$pg_dir"
    pg_dir=""
}
