"""The Python side of the cross-language test, with the same interface as the Rust and Go
programs: `interop_cli.py encrypt|decrypt URI AAD_HEX DATA_HEX [DEK_STORE_URI]` prints the
result in hex (with a DEK store, encryption writes the compact form);
`interop_cli.py stream-encrypt|stream-decrypt URI AAD_HEX IN_FILE OUT_FILE` goes through a
stream file."""

import sys

import envelope_sdk


def stream(op: str, uri: str, aad: bytes, src: str, dst: str) -> int:
    with envelope_sdk.Client(uri) as client:
        if op == "stream-encrypt":
            with open(src, "rb") as f, client.open(dst, "wb", aad=aad) as out:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
        else:
            with client.open(src, "rb", aad=aad) as f, open(dst, "wb") as out:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
    return 0


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] in ("stream-encrypt", "stream-decrypt"):
        return stream(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4], sys.argv[5])
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
