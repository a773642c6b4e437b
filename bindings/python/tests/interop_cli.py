"""The Python side of the cross-language test, with the same interface as the Rust and Go
programs: `interop_cli.py encrypt|decrypt URI AAD_HEX DATA_HEX` prints the result in hex."""

import sys

import envelope_sdk


def main() -> int:
    if len(sys.argv) != 5 or sys.argv[1] not in ("encrypt", "decrypt"):
        print("usage: interop_cli.py encrypt|decrypt URI AAD_HEX DATA_HEX", file=sys.stderr)
        return 2
    op, uri, aad, data = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
    with envelope_sdk.Client(uri) as client:
        out = client.encrypt(data, aad) if op == "encrypt" else client.decrypt(data, aad)
    print(out.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
