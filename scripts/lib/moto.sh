# Sourced by scripts/test.sh: the moto AWS emulator (PyPI `moto[server]`) on a free loopback
# port, installed into the project's virtualenv.

# shellcheck source=tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

MOTO_PACKAGE=${MOTO_PACKAGE:-moto[server]==5.2.5}

start_moto() {
    ensure_venv_tool "$MOTO_PACKAGE" moto_server
    local port log
    port=$(free_port)
    log=$ENVELOPE_TOOLS/moto.log
    "$ENVELOPE_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    export ENVELOPE_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
    export ENVELOPE_TEST_MOTO_BIN=$ENVELOPE_VENV/bin/moto_server
    if ! wait_http "$ENVELOPE_TEST_AWS_ENDPOINT/moto-api/" 60; then
        cat "$log" >&2
        return 1
    fi
    echo "moto $("$ENVELOPE_VENV/bin/pip" show moto 2>/dev/null | awk '/^Version/{print $2}') on $ENVELOPE_TEST_AWS_ENDPOINT (pid $MOTO_PID)"
}

stop_moto() {
    if [ -n "${MOTO_PID:-}" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
}
