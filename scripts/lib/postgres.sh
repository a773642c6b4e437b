# Sourced by the test and bench scripts: a throwaway PostgreSQL cluster (Debian's
# `postgresql` package, installed with apt-get when missing) under a temporary directory,
# listening on a free loopback port, stopped and deleted by stop_postgres.

# shellcheck source=tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

# The server binaries of the newest installed major version.
pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

ensure_postgres() {
    if pg_bindir >/dev/null; then
        return 0
    fi
    echo "installing Debian's postgresql package" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null ||
        { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
    pg_bindir >/dev/null || { echo "postgresql did not install initdb" >&2; return 1; }
}

# initdb and postgres refuse to run as root: run them as the `postgres` system user then.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_postgres() {
    ensure_postgres
    local bin port
    bin=$(pg_bindir)
    port=$(free_port)
    POSTGRES_DIR=$(mktemp -d /tmp/envelope-pg.XXXXXX)
    chmod 755 "$POSTGRES_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$POSTGRES_DIR"
    pg_as_owner "$bin/initdb" -D "$POSTGRES_DIR/data" -U envelope --auth=trust \
        --no-sync -E UTF8 >"$POSTGRES_DIR/initdb.log" 2>&1 ||
        { cat "$POSTGRES_DIR/initdb.log" >&2; return 1; }
    pg_as_owner "$bin/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_DIR -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null ||
        { cat "$POSTGRES_DIR/server.log" >&2; return 1; }
    POSTGRES_BIN=$bin
    export ENVELOPE_TEST_PG_URL="postgres://envelope@127.0.0.1:$port/postgres"
    # The TLS tests start their own clusters (ssl=on, certificates they make) from these.
    export ENVELOPE_TEST_PG_BINDIR=$bin
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $ENVELOPE_TEST_PG_URL (cluster in $POSTGRES_DIR)"
}

stop_postgres() {
    if [ -n "${POSTGRES_DIR:-}" ]; then
        pg_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$POSTGRES_DIR"
        POSTGRES_DIR=
    fi
}
