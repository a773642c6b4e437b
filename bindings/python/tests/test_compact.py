"""The compact form (format version 3, and version 2 values) through the Python package: every vector of
testvectors/compact.json (rows imported into a fresh SQLite DEK store, the vector's store edit
applied), sizes, and the SQLAlchemy types writing ev3: values."""

import copy
import json

import pytest
from sqlalchemy import Integer, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import envelope_sdk
from envelope_sdk import Client, EnvelopeError
from envelope_sdk import errors as E
from envelope_sdk.sqlalchemy import EncryptedBytes, EncryptedString, column_aad

from conftest import REPO
from test_vectors import KINDS, vectors_uri_for

COMPACT = json.loads((REPO / "testvectors" / "compact.json").read_text())
COMPACT_KINDS = {**KINDS, "dek_not_found": E.DekNotFound}


def edited_rows(edit):
    """The vectors' store rows with a store_edit applied (as compact.json documents it)."""
    rows = copy.deepcopy(COMPACT["dek_store"])
    if not edit:
        return rows
    index = {row["id"]: i for i, row in enumerate(rows)}
    op = edit["op"]
    if op == "set":
        row = rows[index[edit["row"]]]
        for field in ("key_version", "wrapped_dek", "commitment", "state", "bound"):
            if field in edit:
                row[field] = edit[field]
    elif op == "swap_wrapped":
        a, b = (rows[index[i]] for i in edit["rows"])
        for field in ("provider", "key_id", "key_version", "wrapped_dek"):
            a[field], b[field] = b[field], a[field]
    elif op == "swap":
        a, b = (index[i] for i in edit["rows"])
        rows[a], rows[b] = rows[b], rows[a]
        rows[a]["id"], rows[b]["id"] = rows[b]["id"], rows[a]["id"]
    elif op == "delete":
        del rows[index[edit["row"]]]
    else:
        raise AssertionError(f"unknown store edit {op}")
    return rows


@pytest.fixture(scope="module")
def compact_uri(tmp_path_factory):
    return vectors_uri_for(COMPACT, tmp_path_factory)


@pytest.mark.parametrize("vector", COMPACT["vectors"], ids=lambda v: v["name"])
def test_compact_vector(vector, compact_uri, tmp_path):
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    rows = edited_rows(vector.get("store_edit"))
    assert envelope_sdk.import_dek_store_rows(store, rows) == len(rows)
    with Client(compact_uri, dek_store=store) as client:
        ct = bytes.fromhex(vector["ciphertext"])
        aad = bytes.fromhex(vector["aad"])
        if vector["expected"] == "ok":
            plaintext = bytes.fromhex(vector["plaintext"])
            assert client.decrypt(ct, aad) == plaintext
            info = Client.inspect(ct)
            assert (info.format_version, info.dek_id, info.suite) == (ct[2], vector["dek_id"], vector["suite"])
            assert info.committing == (ct[2] == 3)
            assert info.key_id is None and info.overhead == len(ct) - len(plaintext)
            if "ciphertext_text" in vector:
                assert envelope_sdk.to_text(ct) == vector["ciphertext_text"]
                assert client.decrypt_text(vector["ciphertext_text"], aad) == plaintext
        else:
            with pytest.raises(EnvelopeError) as err:
                client.decrypt(ct, aad)
            assert type(err.value) is COMPACT_KINDS[vector["expected"]], str(err.value)


@pytest.mark.parametrize("vector", COMPACT["text_vectors"], ids=lambda v: v["name"])
def test_compact_text_vector(vector, compact_uri, tmp_path):
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    envelope_sdk.import_dek_store_rows(store, COMPACT["dek_store"])
    with Client(compact_uri, dek_store=store) as client:
        with pytest.raises(EnvelopeError) as err:
            client.decrypt_text(vector["text"])
        assert type(err.value) is COMPACT_KINDS[vector["expected"]], str(err.value)


def test_importing_a_taken_id_is_a_store_error(tmp_path):
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    assert envelope_sdk.import_dek_store_rows(store, json.dumps(COMPACT["dek_store"])) == len(COMPACT["dek_store"])
    with pytest.raises(E.DekStoreError, match="taken"):
        envelope_sdk.import_dek_store_rows(store, COMPACT["dek_store"][:1])
    with pytest.raises(E.InvalidConfig, match="ids start at 1"):
        envelope_sdk.import_dek_store_rows(store, [{**COMPACT["dek_store"][0], "id": 0}])


def test_compact_sizes_and_a_cold_reader(uri, tmp_path):
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    with Client(uri, dek_store=store) as writer:
        ct = writer.encrypt(b"123-45-6789", b"patients.ssn:1")
        assert len(ct) == 83 and ct[:3] == b"EV\x03"
        text_form = writer.encrypt_text("123-45-6789", b"patients.ssn:1")
        assert len(text_form) == 115 and text_form.startswith("ev3:")
        assert writer.stats()["dek_store_writes"] == 1
    with Client(uri, dek_store=store, compact_version=2) as v2_writer:
        old = v2_writer.encrypt(b"123-45-6789", b"patients.ssn:1")
        assert len(old) == 51 and old[:3] == b"EV\x02"
        assert not Client.inspect(old).committing
        assert envelope_sdk.to_text(old).startswith("ev2:")
    with pytest.raises(E.InvalidArgument):
        Client(uri, dek_store=store, compact_version=4)
    with Client(uri, dek_store=store, refuse_compact_v2=True) as strict:
        with pytest.raises(E.UnsupportedFormatVersion):
            strict.decrypt(old, b"patients.ssn:1")
        assert strict.decrypt(ct, b"patients.ssn:1") == b"123-45-6789"
    with Client(uri, dek_store=store) as reader:
        for _ in range(3):
            assert reader.decrypt(ct, b"patients.ssn:1") == b"123-45-6789"
        assert reader.decrypt_text(text_form, b"patients.ssn:1") == b"123-45-6789"
        stats = reader.stats()
        assert (stats["dek_store_reads"], stats["kms_unwrap_calls"]) == (1, 1)
    with Client(uri) as plain:
        with pytest.raises(E.InvalidConfig, match="DEK store"):
            plain.decrypt(ct, b"patients.ssn:1")
    with pytest.raises(E.InvalidConfig):
        Client(uri, dek_store="redis://localhost")


def test_sqlalchemy_types_write_the_compact_form(uri, tmp_path):
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    client = Client(uri, dek_store=store)

    class Base(DeclarativeBase):
        pass

    class Patient(Base):
        __tablename__ = "patients"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        ssn: Mapped[str] = mapped_column(EncryptedString(client, "patients", "ssn"), nullable=True)
        scan: Mapped[bytes] = mapped_column(EncryptedBytes(client, "patients", "scan"), nullable=True)

    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Patient(id=i, ssn=f"123-45-{i:04d}", scan=bytes([i]) * 11) for i in range(1, 101)])
        s.commit()
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT ssn, scan FROM patients")).all()
    assert all(r.ssn.startswith("ev3:") and len(r.ssn) == 115 for r in raw)
    assert all(r.scan[:3] == b"EV\x03" and len(r.scan) == 83 for r in raw)
    # 100 rows, two columns: one DEK, one store row.
    assert {Client.inspect(r.ssn).dek_id for r in raw} | {Client.inspect(r.scan).dek_id for r in raw} == {1}
    with Session(engine) as s:
        assert s.get(Patient, 42).ssn == "123-45-0042"
    # Another process (a cold client on the same store) reads the stored text directly.
    with Client(uri, dek_store=store) as cold:
        assert cold.decrypt_text(raw[0].ssn, column_aad("patients", "ssn")).startswith(b"123-45-")
        assert cold.stats()["dek_store_reads"] == 1
    client.close()
