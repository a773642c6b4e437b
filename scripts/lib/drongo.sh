# Sourced by scripts/test.sh: drongo (PyPI `drongo`), a Cloud KMS REST v1 emulator, on a free
# loopback port, installed into the project's virtualenv. It speaks the wire protocol only:
# one version per key, no version management, and no real encryption (envelope-kms-gcp's
# README lists the gaps exactly).

# shellcheck source=tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

DRONGO_PACKAGE=${DRONGO_PACKAGE:-drongo==0.8.0}

start_drongo() {
    ensure_venv_tool "$DRONGO_PACKAGE google-crc32c" drongo
    local port log
    port=$(free_port)
    log=$ENVELOPE_TOOLS/drongo.log
    "$ENVELOPE_VENV/bin/drongo" server --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    DRONGO_PID=$!
    export ENVELOPE_TEST_GCP_ENDPOINT="http://127.0.0.1:$port"
    export ENVELOPE_TEST_DRONGO_BIN=$ENVELOPE_VENV/bin/drongo
    if ! wait_http "$ENVELOPE_TEST_GCP_ENDPOINT/" 60; then
        cat "$log" >&2
        return 1
    fi
    echo "drongo $("$ENVELOPE_VENV/bin/pip" show drongo 2>/dev/null | awk '/^Version/{print $2}') on $ENVELOPE_TEST_GCP_ENDPOINT (pid $DRONGO_PID)"
}

stop_drongo() {
    if [ -n "${DRONGO_PID:-}" ]; then
        kill "$DRONGO_PID" 2>/dev/null || true
        wait "$DRONGO_PID" 2>/dev/null || true
        DRONGO_PID=
    fi
}
