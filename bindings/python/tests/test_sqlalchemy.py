"""The SQLAlchemy column types against a real database (SQLite through SQLAlchemy)."""

import pytest
from sqlalchemy import Integer, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from envelope_sdk import Client, DecryptionFailed
from envelope_sdk.sqlalchemy import EncryptedBytes, EncryptedString, column_aad


def make_model(client):
    class Base(DeclarativeBase):
        pass

    class Patient(Base):
        __tablename__ = "patients"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        ssn: Mapped[str] = mapped_column(EncryptedString(client, "patients", "ssn"), nullable=True)
        email: Mapped[str] = mapped_column(EncryptedString(client, "patients", "email"), nullable=True)
        scan: Mapped[bytes] = mapped_column(EncryptedBytes(client, "patients", "scan"), nullable=True)

    return Base, Patient


def test_encrypted_columns_round_trip_and_bind_table_and_column(client, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base, Patient = make_model(client)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([
            Patient(id=1, ssn="123-45-6789", email="ada@example.org", scan=b"\x00\x01binary"),
            Patient(id=2, ssn=None, email="bob@example.org", scan=None),
        ])
        s.commit()

    with engine.connect() as conn:
        raw = conn.execute(text("SELECT ssn, email, scan FROM patients WHERE id = 1")).one()
    assert raw.ssn.startswith("ev1:") and "123-45" not in raw.ssn
    assert raw.scan[:3] == b"EV\x01"
    assert Client.inspect(raw.ssn).key_id == "default"

    with Session(engine) as s:
        p1 = s.get(Patient, 1)
        assert (p1.ssn, p1.email, p1.scan) == ("123-45-6789", "ada@example.org", b"\x00\x01binary")
        p2 = s.get(Patient, 2)
        assert p2.ssn is None and p2.scan is None
        assert s.scalars(select(Patient.email).order_by(Patient.id)).all() == ["ada@example.org", "bob@example.org"]

    # A ciphertext copied into another column does not decrypt there.
    with engine.begin() as conn:
        conn.execute(text("UPDATE patients SET email = ssn WHERE id = 1"))
    with Session(engine) as s:
        with pytest.raises(DecryptionFailed):
            s.get(Patient, 1)
    assert client.decrypt_text(raw.ssn, column_aad("patients", "ssn")) == b"123-45-6789"
