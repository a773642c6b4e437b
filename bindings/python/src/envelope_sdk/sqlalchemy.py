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

from typing import Optional

from sqlalchemy.types import LargeBinary, String, TypeDecorator

from .client import Client


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
