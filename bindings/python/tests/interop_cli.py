"""The Python side of the cross-language test, with the same interface as the Rust and Go
programs: `interop_cli.py encrypt|decrypt URI AAD_HEX DATA_HEX [DEK_STORE_URI]` prints the
result in hex (with a DEK store, encryption writes the compact form)."""

import sys

import envelope_sdk


def main() -> int:
    if len(sys.argv) not in (5, 6) or sys.argv[1] not in ("encrypt", "decrypt"):
        print("usage: interop_cli.py encrypt|decrypt URI AAD_HEX DATA_HEX [DEK_STORE_URI]", file=sys.stderr)
        return 2
    op, uri, aad, data = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
    store = sys.argv[5] if len(sys.argv) == 6 else None
    with envelope_sdk.Client(uri, dek_store=store) as client:
        out = client.encrypt(data, aad) if op == "encrypt" else client.decrypt(data, aad)
    print(out.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
