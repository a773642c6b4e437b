"""SQLAlchemy column types that encrypt on write and decrypt on read.

The AAD binds each value to its table and column, so a ciphertext copied into another
column (or another table) does not decrypt::

    from envelope_sdk import Client
    from envelope_sdk.sqlalchemy import EncryptedString

    client = Client("local:///etc/app/keyring.json")

    class Patient(Base):
        __tablename__ = "patients"
        id = mapped_column(Integer, primary_key=True)
        ssn = mapped_column(EncryptedString(client, "patients", "ssn"))
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Callable, Optional, Tuple

from sqlalchemy import bindparam, event
from sqlalchemy.engine import Row
from sqlalchemy.ext.hybrid import Comparator, hybrid_property
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import LargeBinary, String, TypeDecorator

from .client import Client, normalize


def column_aad(table: str, column: str) -> bytes:
    """The AAD of a column: ``envelope:TABLE.COLUMN``."""
    return f"envelope:{table}.{column}".encode()


class EncryptedString(TypeDecorator):
    """A text column holding ``ev1:`` ciphertexts of UTF-8 strings."""

    impl = String
    cache_ok = True

    def __init__(self, client: Client, table: str, column: str, length: Optional[int] = None) -> None:
        super().__init__(length=length)
        self.client = client
        self.aad = column_aad(table, column)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return self.client.encrypt_text(value, self.aad)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return self.client.decrypt_text(value, self.aad).decode("utf-8")


class EncryptedBytes(TypeDecorator):
    """A binary column holding binary-form ciphertexts of bytes."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, client: Client, table: str, column: str) -> None:
        super().__init__()
        self.client = client
        self.aad = column_aad(table, column)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return self.client.encrypt(value, self.aad)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return self.client.decrypt(value, self.aad)


# -- blind indexes ----------------------------------------------------------------------

# Lookups waiting for their statement to run: bind parameter key → what the rows must hold.
_PENDING: "OrderedDict[str, Tuple[str, bytes, str, Optional[Callable[[bytes], bytes]]]]" = OrderedDict()
_PENDING_LOCK = threading.Lock()
_PENDING_MAX = 10_000


def _plain(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class _BlindIndexComparator(Comparator):
    def __init__(self, owner: "blind_indexed", cls) -> None:
        super().__init__(getattr(cls, owner.index_attr))
        self.owner = owner

    def __eq__(self, other):  # type: ignore[override]
        owner = self.owner
        owner.check()
        values = owner.client.query_values(owner.index, other, text=owner.text)
        key = f"envelope_blind_index_{uuid.uuid4().hex}"
        wanted = normalize(owner.normalizer, owner.custom_value(_plain(other)))
        with _PENDING_LOCK:
            _PENDING[key] = (owner.value_attr, wanted, owner.normalizer, owner.custom)
            while len(_PENDING) > _PENDING_MAX:
                _PENDING.popitem(last=False)
        return self.expression.in_(bindparam(key, values, expanding=True))


class blind_indexed(hybrid_property):
    """An encrypted attribute with a blind-index companion column, looked up by value.

    ``value_attr`` names the mapped encrypted column (an :class:`EncryptedString` or
    :class:`EncryptedBytes`), ``index_attr`` the mapped index column (``LargeBinary``
    for the binary form, ``String`` with ``text=True``). Assigning the attribute writes
    both; ``Model.attr == value`` selects by index under every version not retired (the
    rotation window) and the session drops the rows whose decrypted value differs (false
    positives), so a query returns exactly the matching rows::

        class User(Base):
            __tablename__ = "users"
            id = mapped_column(Integer, primary_key=True)
            email_ct = mapped_column("email", EncryptedString(client, "users", "email"))
            email_idx = mapped_column(LargeBinary, index=True)
            email = blind_indexed(client, "users.email", "email_ct", "email_idx",
                                  normalizer="nfkc_casefold+trim_collapse")

        session.query(User).filter(User.email == "A@B.example").all()

    ``normalizer`` must be the index's (checked against the index key store on first use:
    :class:`IndexMismatch` otherwise); a ``custom`` function is registered with the client
    under the index's ``custom:NAME`` step name ``custom_name``.
    """

    def __init__(
        self,
        client: Client,
        index: str,
        value_attr: str,
        index_attr: str,
        *,
        normalizer: str = "exact",
        text: bool = False,
        custom: Optional[Callable[[bytes], bytes]] = None,
        custom_name: Optional[str] = None,
    ) -> None:
        self.client = client
        self.index = index
        self.value_attr = value_attr
        self.index_attr = index_attr
        self.normalizer = normalizer
        self.text = text
        self.custom = custom
        self._checked = False
        if custom is not None:
            if not custom_name:
                raise ValueError("a custom normalizer needs custom_name (the index's custom:NAME)")
            client.register_normalizer(index, custom_name, custom)
            self.normalizer = normalizer if normalizer.startswith("custom:") else f"custom:{custom_name}+{normalizer}" if normalizer != "exact" else f"custom:{custom_name}"
        super().__init__(self._get, self._set, custom_comparator=self._comparator)

    def custom_value(self, value: bytes) -> bytes:
        return self.custom(value) if self.custom is not None else value

    def check(self) -> None:
        if not self._checked:
            self.client.check_blind_index(self.index, self.normalizer)
            self._checked = True

    def _get(self, instance):
        return getattr(instance, self.value_attr)

    def _set(self, instance, value) -> None:
        setattr(instance, self.value_attr, value)
        if value is None:
            setattr(instance, self.index_attr, None)
            return
        self.check()
        setattr(instance, self.index_attr, self.client.blind_index(self.index, value, text=self.text))

    def _comparator(self, cls):
        return _BlindIndexComparator(self, cls)


def _entities(row):
    if isinstance(row, Row):
        return tuple(row)
    return (row,)


def _matches(row, lookups) -> bool:
    for attr, wanted, spec, custom in lookups:
        held = [getattr(e, attr) for e in _entities(row) if hasattr(e, attr)]
        if not held:
            continue  # the entity is not selected (a column query): keep the row
        for value in held:
            if value is None:
                return False
            plain = _plain(value)
            if custom is not None:
                plain = custom(plain)
            if normalize(spec, plain) != wanted:
                return False
    return True


@event.listens_for(Session, "do_orm_execute")
def _drop_false_positives(state):
    """Drops the rows of a blind-index lookup whose decrypted value differs."""
    # Every ORM select of the application passes here: leave at once unless a blind-index
    # lookup was ever built.
    if not _PENDING or not state.is_select:
        return None
    lookups = []
    for element in visitors.iterate(state.statement):
        if isinstance(element, BindParameter):
            with _PENDING_LOCK:
                # Kept (not popped): a query object executed again filters again.
                found = _PENDING.get(element.key)
                if found is not None:
                    _PENDING.move_to_end(element.key)
            if found is not None:
                lookups.append(found)
    if not lookups:
        return None
    frozen = state.invoke_statement().freeze()
    frozen.data = [row for row in frozen.data if _matches(row, lookups)]
    return frozen()
