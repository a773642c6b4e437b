"""Parquet modular encryption (PME) with envelope as the KMS, for pyarrow.

Parquet encrypts each column (and the footer) under its own data key; a *KMS client*
wraps those data keys under *master keys* and the wrapped keys travel as *key material*,
inside the file or in a sidecar beside it (``_KEY_MATERIAL_FOR_<file>.json``). Here the
master key ids are envelope key URIs (``local:///…#KEY``, ``aws-kms://…``, ``gcp-kms://…``,
``vault://…``) or names mapped to them, and every wrapped data key is an envelope
ciphertext (text form, ``ev1:…``): its header says which KMS key *version* wraps it, so
``envelope census --parquet DIR`` counts files by KEK version from key material alone, and
``envelope rewrap --parquet DIR`` moves them to the current version by rewriting the
sidecars only (the data files stay byte-identical).

::

    from envelope_sdk import parquet as pme
    keys = {"pii": "local:///etc/app/keyring.json#pii", "footer": "local:///etc/app/keyring.json"}
    pme.write_table(table, "/lake/users/part-0.parquet", footer_key="footer",
                    column_keys={"pii": ["ssn", "email"]}, key_uris=keys)
    table = pme.read_table("/lake/users/part-0.parquet", key_uris=keys)

What this module enforces, because an auditor asks: data keys are 256 bits (pages and footer
AES-256-GCM, ``AES_GCM_V1``); PME's *double wrapping* is refused, because its
intermediate key-encryption key is AES-128 (envelope's own data-key cache already makes
single wrapping cheap: wrapping a file's keys costs no KMS call while the cached envelope
data key lives). Each wrapped key is bound (as AAD) to its master key id.

One :class:`envelope_sdk.Client` per key URI is shared by every KMS client of the process
(:func:`client_for`), so a Spark executor's Python worker keeps one DEK cache, not one per
file.
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import json
import os
import threading
from typing import Dict, List, Mapping, Optional, Tuple

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from .client import Client
from .errors import InvalidArgument

__all__ = [
    "AAD_PREFIX",
    "EnvelopeKmsClient",
    "client_for",
    "close_clients",
    "connection_config",
    "crypto_factory",
    "encryption_config",
    "decryption_config",
    "file_encryption_properties",
    "file_decryption_properties",
    "write_table",
    "read_table",
    "key_material",
]

#: The AAD of each wrapped data key: this prefix, then the master key id (UTF-8).
AAD_PREFIX = b"envelope.parquet.v1:"
#: The data-key length this module writes and accepts, in bytes (AES-256).
DATA_KEY_BYTES = 32
_URI_SCHEMES = ("local://", "aws-kms://", "gcp-kms://", "vault://")

_clients: Dict[str, Client] = {}
_clients_lock = threading.Lock()


def client_for(key_uri: str) -> Client:
    """The process's client for ``key_uri``, created on first use and shared afterwards."""
    with _clients_lock:
        found = _clients.get(key_uri)
        if found is None:
            found = _clients[key_uri] = Client(key_uri)
        return found


def close_clients() -> None:
    """Forgets every cached key of the process: pyarrow's caches of KMS clients and unwrapped
    Parquet keys are emptied, and the shared envelope clients closed (their cached data keys
    zeroized); the next use starts afresh. After a key version is destroyed, say, so that no
    file is read through a key cached before."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
        factory = _factory
    if factory is not None:
        factory.remove_cache_entries_for_all_tokens()
    for client in clients:
        client.close()


def _resolve(master_key_id: str, key_uris: Mapping[str, str]) -> str:
    uri = key_uris.get(master_key_id)
    if uri is not None:
        return uri
    if master_key_id.startswith(_URI_SCHEMES):
        return master_key_id
    known = ", ".join(sorted(key_uris)) or "none"
    raise InvalidArgument(
        f"master key id {master_key_id!r} is not an envelope key URI and not one of the names "
        f"mapped to one (key_uris: {known})"
    )


def _aad(master_key_id: str) -> bytes:
    return AAD_PREFIX + master_key_id.encode("utf-8")


class EnvelopeKmsClient(pe.KmsClient):
    """A pyarrow ``KmsClient`` whose master keys are envelope keys.

    ``key_uris`` maps master key ids (the names used in ``footer_key`` and ``column_keys``)
    to key URIs; a master key id that is itself a key URI needs no entry. pyarrow builds
    these through :func:`crypto_factory`; you rarely make one yourself.
    """

    def __init__(self, key_uris: Optional[Mapping[str, str]] = None) -> None:
        super().__init__()
        self.key_uris: Dict[str, str] = dict(key_uris or {})

    def _client(self, master_key_id: str) -> Client:
        return client_for(_resolve(master_key_id, self.key_uris))

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        """Encrypts a Parquet data key under the master key: an ``ev1:`` text ciphertext."""
        if len(key_bytes) != DATA_KEY_BYTES:
            raise InvalidArgument(
                f"Parquet handed envelope a {len(key_bytes)}-byte key to wrap: envelope wraps "
                "256-bit data keys only. Use data_key_length_bits=256 and double_wrapping=False "
                "(double wrapping's key-encryption key is AES-128); encryption_config() sets both"
            )
        client = self._client(master_key_identifier)
        return client.encrypt_text(bytes(key_bytes), _aad(master_key_identifier))

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        """Decrypts a wrapped Parquet data key (any version of the master key that is not
        destroyed)."""
        if not wrapped_key.startswith("ev"):
            raise InvalidArgument(
                f"the key material of master key {master_key_identifier!r} was not written by "
                "envelope (a wrapped key is an ev1: ciphertext): another KMS client wrote this file"
            )
        key = self._client(master_key_identifier).decrypt_text(wrapped_key, _aad(master_key_identifier))
        if len(key) != DATA_KEY_BYTES:
            raise InvalidArgument(f"a wrapped Parquet data key of {len(key)} bytes: expected {DATA_KEY_BYTES}")
        return key


def connection_config(key_uris: Optional[Mapping[str, str]] = None) -> pe.KmsConnectionConfig:
    """pyarrow's KMS connection settings carrying the master key id → key URI map.

    pyarrow caches KMS clients and unwrapped keys per access token: the token here is a
    digest of the map, so that reads and writes under another map never share them."""
    mapping = dict(key_uris or {})
    token = hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()
    return pe.KmsConnectionConfig(
        kms_instance_id="envelope",
        kms_instance_url="envelope",
        key_access_token=token,
        custom_kms_conf=mapping,
    )


def _new_kms_client(config: pe.KmsConnectionConfig) -> EnvelopeKmsClient:
    return EnvelopeKmsClient(config.custom_kms_conf)


_factory: Optional[pe.CryptoFactory] = None


def crypto_factory() -> pe.CryptoFactory:
    """The process's pyarrow ``CryptoFactory`` whose KMS clients are
    :class:`EnvelopeKmsClient` (one, so that pyarrow's key caches serve every file)."""
    global _factory
    with _clients_lock:
        if _factory is None:
            _factory = pe.CryptoFactory(_new_kms_client)
        return _factory


@atexit.register
def _release_at_exit() -> None:
    # pyarrow's caches hold Python KMS clients from C++: emptied while the interpreter still
    # runs, so that no C++ destructor releases a Python object after finalization.
    global _factory
    close_clients()
    _factory = None


def encryption_config(
    footer_key: str,
    column_keys: Mapping[str, List[str]],
    *,
    external_key_material: bool = True,
    plaintext_footer: bool = False,
    cache_lifetime_seconds: Optional[float] = None,
) -> pe.EncryptionConfiguration:
    """PME settings: AES-256-GCM for pages and footer, single wrapping.

    ``column_keys`` maps a master key id to the columns it protects; ``footer_key`` is the
    master key id of the footer. ``external_key_material`` (the default) keeps the wrapped
    keys in a sidecar beside each file, so that a rotation rewrites sidecars only; with
    ``False`` they live inside the file and moving them to a new KEK version means
    rewriting the file.
    """
    if not footer_key:
        raise InvalidArgument("footer_key: name the master key of the footer")
    options = dict(
        footer_key=footer_key,
        column_keys={k: list(v) for k, v in column_keys.items()},
        encryption_algorithm="AES_GCM_V1",
        plaintext_footer=plaintext_footer,
        double_wrapping=False,
        internal_key_material=not external_key_material,
        data_key_length_bits=8 * DATA_KEY_BYTES,
    )
    if cache_lifetime_seconds is not None:
        options["cache_lifetime"] = datetime.timedelta(seconds=cache_lifetime_seconds)
    return pe.EncryptionConfiguration(**options)


def decryption_config(cache_lifetime_seconds: Optional[float] = None) -> pe.DecryptionConfiguration:
    """PME read settings (pyarrow's own; the KMS client decides which keys it can unwrap)."""
    if cache_lifetime_seconds is None:
        return pe.DecryptionConfiguration()
    return pe.DecryptionConfiguration(cache_lifetime=datetime.timedelta(seconds=cache_lifetime_seconds))


def _local(path, filesystem):
    if filesystem is None:
        return os.path.abspath(os.fspath(path)), pafs.LocalFileSystem()
    return os.fspath(path), filesystem


def file_encryption_properties(
    path,
    *,
    footer_key: str,
    column_keys: Mapping[str, List[str]],
    key_uris: Optional[Mapping[str, str]] = None,
    filesystem=None,
    external_key_material: bool = True,
    plaintext_footer: bool = False,
):
    """The ``encryption_properties`` for writing one file at ``path`` (the sidecar of
    external key material is written beside it, through ``filesystem``; local by default)."""
    path, filesystem = _local(path, filesystem)
    config = encryption_config(
        footer_key, column_keys, external_key_material=external_key_material, plaintext_footer=plaintext_footer
    )
    return crypto_factory().file_encryption_properties(connection_config(key_uris), config, path, filesystem)


def file_decryption_properties(path, *, key_uris: Optional[Mapping[str, str]] = None, filesystem=None):
    """The ``decryption_properties`` for reading the file at ``path`` (its sidecar, if it
    has one, is read through ``filesystem``; local by default)."""
    path, filesystem = _local(path, filesystem)
    return crypto_factory().file_decryption_properties(connection_config(key_uris), decryption_config(), path, filesystem)


def write_table(
    table,
    path,
    *,
    footer_key: str,
    column_keys: Mapping[str, List[str]],
    key_uris: Optional[Mapping[str, str]] = None,
    filesystem=None,
    external_key_material: bool = True,
    plaintext_footer: bool = False,
    **write_options,
) -> None:
    """Writes ``table`` as an encrypted Parquet file, creating its directory
    (``pyarrow.parquet.write_table``'s other options pass through)."""
    local_path, fs = _local(path, filesystem)
    parent = os.path.dirname(local_path)
    if parent:
        fs.create_dir(parent, recursive=True)
    properties = file_encryption_properties(
        path,
        footer_key=footer_key,
        column_keys=column_keys,
        key_uris=key_uris,
        filesystem=filesystem,
        external_key_material=external_key_material,
        plaintext_footer=plaintext_footer,
    )
    pq.write_table(table, local_path, filesystem=fs, encryption_properties=properties, **write_options)


def read_table(path, *, key_uris: Optional[Mapping[str, str]] = None, filesystem=None, **read_options):
    """Reads an encrypted Parquet file (``pyarrow.parquet.read_table``'s other options pass
    through)."""
    properties = file_decryption_properties(path, key_uris=key_uris, filesystem=filesystem)
    local_path, fs = _local(path, filesystem)
    return pq.read_table(local_path, filesystem=fs, decryption_properties=properties, **read_options)


def key_material(path) -> List[Tuple[str, dict]]:
    """The key material in the sidecar of the local file at ``path``: (key reference,
    material) pairs, e.g. ``("footerKey", {"masterKeyID": …, "wrappedDEK": "ev1:…"})``."""
    path = os.fspath(path)
    sidecar = os.path.join(os.path.dirname(path), "_KEY_MATERIAL_FOR_" + os.path.basename(path) + ".json")
    with open(sidecar, encoding="utf-8") as f:
        entries = json.load(f)
    return sorted((ref, json.loads(material)) for ref, material in entries.items())
