# Sourced by scripts/test.sh: MiniStack (PyPI `ministack`), a stricter AWS KMS emulator than
# moto (it returns KeyMaterialId and refuses disabled and pending-deletion keys; it has no
# ReEncrypt or RotateKeyOnDemand, which moto covers), on a free loopback port. It pins
# botocore, so it gets its own virtualenv.

# shellcheck source=tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

MINISTACK_PACKAGE=${MINISTACK_PACKAGE:-ministack==1.5.33}
MINISTACK_VENV=$ENVELOPE_TOOLS/ministack-venv

start_ministack() {
    if [ ! -x "$MINISTACK_VENV/bin/ministack" ]; then
        echo "installing $MINISTACK_PACKAGE into $MINISTACK_VENV" >&2
        python3 -m venv "$MINISTACK_VENV"
        "$MINISTACK_VENV/bin/pip" install --quiet --disable-pip-version-check "$MINISTACK_PACKAGE"
    fi
    local port log
    port=$(free_port)
    log=$ENVELOPE_TOOLS/ministack.log
    BIND_HOST=127.0.0.1 GATEWAY_PORT=$port "$MINISTACK_VENV/bin/ministack" >"$log" 2>&1 &
    MINISTACK_PID=$!
    export ENVELOPE_TEST_MINISTACK_ENDPOINT="http://127.0.0.1:$port"
    if ! wait_http "$ENVELOPE_TEST_MINISTACK_ENDPOINT/" 60; then
        cat "$log" >&2
        return 1
    fi
    echo "MiniStack $("$MINISTACK_VENV/bin/pip" show ministack 2>/dev/null | awk '/^Version/{print $2}') on $ENVELOPE_TEST_MINISTACK_ENDPOINT (pid $MINISTACK_PID)"
}

stop_ministack() {
    if [ -n "${MINISTACK_PID:-}" ]; then
        kill "$MINISTACK_PID" 2>/dev/null || true
        wait "$MINISTACK_PID" 2>/dev/null || true
        MINISTACK_PID=
    fi
}
