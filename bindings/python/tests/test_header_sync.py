"""The cffi declarations must match the C header generated from the Rust source."""

import re

from envelope_sdk._native import CDEF

from conftest import REPO

HEADER = (REPO / "envelope-ffi" / "include" / "envelope.h").read_text()


def normalize(decl: str) -> str:
    decl = decl.replace("const char *", "const uint8_t *").replace("char *", "uint8_t *")
    decl = re.sub(r"\bchar \*\*", "uint8_t **", decl)
    return re.sub(r"\s+", " ", decl).strip()


def header_functions():
    body = re.sub(r"//[^\n]*", "", HEADER)
    body = re.sub(r"#[^\n]*", "", body)
    pattern = r"(?:^|\n)([\w \*]*?\b(envelope_\w+)\(([^)]*)\);)"
    return {m.group(2): normalize(m.group(1)) for m in re.finditer(pattern, body)}


def test_every_declared_function_is_in_the_header_with_the_same_signature():
    header = header_functions()
    declared = re.findall(r"^.*\b(envelope_\w+)\(.*\);$", CDEF, re.M)
    assert declared, "no declarations parsed"
    for line in CDEF.strip().splitlines():
        m = re.search(r"\b(envelope_\w+)\(", line)
        if not m or not line.endswith(");"):
            continue
        name = m.group(1)
        assert name in header, f"{name} is declared for Python but not exported by the library"
        # Python declares byte pointers `char *` (to pass bytes without a copy); the header
        # says `uint8_t *`: the same ABI, which `normalize` makes the same text.
        ours, theirs = normalize(line), header[name]
        assert ours == theirs, f"{name}:\n python: {ours}\n header: {theirs}"


def test_every_exported_function_is_declared():
    header = header_functions()
    declared = set(re.findall(r"\b(envelope_\w+)\(", CDEF))
    missing = set(header) - declared
    assert not missing, f"exported but not declared for Python: {sorted(missing)}"
