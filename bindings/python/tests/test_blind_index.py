"""Blind indexes through the C ABI: compute, the query window, batch, normalizers, errors,
and the SQLAlchemy attribute whose equality is a lookup with false positives removed."""

import json

import pytest
from sqlalchemy import Integer, LargeBinary, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from envelope_sdk import (
    BatchError,
    Client,
    IndexMismatch,
    IndexNotFound,
    InvalidArgument,
    InvalidConfig,
    normalize,
)
from envelope_sdk.sqlalchemy import EncryptedString, blind_indexed

from conftest import REPO


@pytest.fixture
def store(tmp_path):
    return f"sqlite://{tmp_path / 'deks.sqlite'}"


@pytest.fixture
def indexed(uri, store):
    with Client(uri, index_store=store) as c:
        yield c


def test_index_values_follow_the_rotation_window(indexed):
    with pytest.raises(IndexNotFound):
        indexed.blind_index("users.email", "a@b.example")
    assert indexed.create_blind_index("users.email", normalizer="nfkc_casefold+trim_collapse") == 1
    v1 = indexed.blind_index("users.email", "a@b.example")
    assert v1[:2] == b"\x00\x01" and len(v1) == 2 + 8
    assert indexed.blind_index("users.email", "  A@B.EXAMPLE ") == v1
    t1 = indexed.blind_index("users.email", "a@b.example", text=True)
    assert t1.startswith("bi1:")
    assert indexed.query_values("users.email", "A@b.example") == [v1]
    assert indexed.rotate_blind_index("users.email") == 2
    v2 = indexed.blind_index("users.email", "a@b.example")
    assert v2[:2] == b"\x00\x02"
    assert indexed.query_values("users.email", "a@b.example") == [v2, v1]
    assert indexed.query_values("users.email", "a@b.example", text=True)[1] == t1
    with pytest.raises(InvalidConfig):
        indexed.set_blind_index_state("users.email", 2, "retired")
    indexed.set_blind_index_state("users.email", 1, "retired")
    assert indexed.query_values("users.email", "a@b.example") == [v2]
    assert indexed.blind_index_batch("users.email", ["a@b.example", b"c@d.example"]) == [
        v2,
        indexed.blind_index("users.email", "c@d.example"),
    ]
    with pytest.raises(BatchError) as failed:
        indexed.blind_index_batch("users.email", [b"ok", b"\xff"])
    assert list(failed.value.failures) == [1]
    indexed.check_blind_index("users.email", "nfkc_casefold+trim_collapse", 64)
    with pytest.raises(IndexMismatch):
        indexed.check_blind_index("users.email", "exact")


def test_a_custom_normalizer_runs_in_python_and_is_checked_by_name(indexed):
    indexed.create_blind_index("users.ssn", normalizer="custom:strip_us+digits", mode="private", bits=16)
    with pytest.raises(IndexMismatch):
        indexed.blind_index("users.ssn", "US-123-45-6789")
    indexed.register_normalizer("users.ssn", "other", lambda v: v)
    with pytest.raises(IndexMismatch):
        indexed.blind_index("users.ssn", "US-123-45-6789")
    indexed.register_normalizer("users.ssn", "strip_us", lambda v: v.removeprefix(b"US-"))
    a = indexed.blind_index("users.ssn", "US-123-45-6789")
    assert a == indexed.blind_index("users.ssn", "123 45 6789") and len(a) == 4


def test_a_client_without_an_index_store_says_so(uri):
    with Client(uri) as c, pytest.raises(InvalidArgument):
        c.blind_index("users.email", "x")


def test_states_decide_which_versions_answer(indexed):
    indexed.create_blind_index("t.c")
    indexed.rotate_blind_index("t.c")
    indexed.set_blind_index_state("t.c", 1, "retired")
    assert [v[:2] for v in indexed.query_values("t.c", "x")] == [b"\x00\x02"]
    # Re-activating version 1 (a rollback) makes version 2 a query version.
    indexed.set_blind_index_state("t.c", 1, "active")
    assert [v[:2] for v in indexed.query_values("t.c", "x")] == [b"\x00\x01", b"\x00\x02"]
    assert indexed.blind_index("t.c", "x")[:2] == b"\x00\x01"
    with pytest.raises(IndexNotFound):
        indexed.set_blind_index_state("t.c", 3, "retired")
    with pytest.raises(InvalidArgument):
        indexed.set_blind_index_state("t.c", 2, "gone")


def test_the_index_vectors_pass():
    vectors = json.loads((REPO / "testvectors" / "index.json").read_text())
    assert vectors["normalizers"]
    for case in vectors["normalizers"]:
        got = normalize(case["normalizer"], bytes.fromhex(case["input_hex"]))
        assert got.hex() == case["output_hex"], case


def make_model(client, store):
    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        email_ct: Mapped[str] = mapped_column("email", EncryptedString(client, "users", "email"), nullable=True)
        email_idx: Mapped[bytes] = mapped_column(LargeBinary, nullable=True, index=True)
        email = blind_indexed(client, "users.email", "email_ct", "email_idx", normalizer="nfkc_casefold+trim_collapse")

    return Base, User


def test_sqlalchemy_equality_is_a_lookup_without_false_positives(uri, store, tmp_path):
    with Client(uri, index_store=store) as client:
        # 8 bits: about 1 in 256 other addresses shares a lookup's index value.
        client.create_blind_index("users.email", normalizer="nfkc_casefold+trim_collapse", mode="private", bits=8)
        engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        Base, User = make_model(client, store)
        Base.metadata.create_all(engine)
        with Session(engine) as s:
            s.add_all([User(id=i, email=f"user{i}@Example.com") for i in range(1, 2001)])
            s.commit()
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT email, email_idx FROM users WHERE id = 7")).one()
        assert raw.email.startswith("ev1:") and "user7" not in raw.email
        wanted = client.query_values("users.email", "USER7@example.com ")
        with engine.connect() as conn:
            candidates = conn.execute(
                select(User.__table__.c.id).where(User.__table__.c.email_idx.in_(wanted))
            ).all()
        assert len(candidates) > 1, "8 bits over 2,000 addresses must collide"
        with Session(engine) as s:
            query = s.query(User).filter(User.email == "USER7@example.com ")
            assert [u.id for u in query.all()] == [7]
            # The same query object executed again filters its false positives again.
            assert [u.id for u in query.all()] == [7]
            assert s.scalars(select(User).where(User.email == "user1999@example.com")).one().id == 1999
            assert s.query(User).filter(User.email == "nobody@example.com").all() == []
        # A model that declares another normalizer than the stored index's is refused at
        # its first lookup and its first write, before anything is written.
        class Wrong(DeclarativeBase):
            pass

        class WrongUser(Wrong):
            __tablename__ = "users"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            email_ct: Mapped[str] = mapped_column("email", EncryptedString(client, "users", "email"), nullable=True)
            email_idx: Mapped[bytes] = mapped_column(LargeBinary, nullable=True)
            email = blind_indexed(client, "users.email", "email_ct", "email_idx", normalizer="exact")

        with pytest.raises(IndexMismatch):
            WrongUser.email == "a@b.example"  # noqa: B015
        with pytest.raises(IndexMismatch):
            WrongUser(id=9999, email="a@b.example")
