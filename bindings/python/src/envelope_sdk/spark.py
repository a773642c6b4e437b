"""Envelope-encrypted columns of Spark DataFrames: encrypt, decrypt, rewrap, re-encrypt, census.

Each job is a ``mapInArrow`` over the DataFrame: the column's values arrive in Arrow batches,
go to the C library in one batch call (encrypt, decrypt) or value by value without a data
key (rewrap is header-only), and leave in the same batches. Each Python worker process keeps
one :class:`envelope_sdk.Client` per key URI (:func:`envelope_sdk.parquet.client_for`), so
the data-key cache serves every task of the worker: the KMS sees about one call per worker
and data key, not one per row or batch.

::

    from envelope_sdk import spark as ev
    users = ev.encrypt(users, "ssn", "aws-kms://arn:aws:kms:…", aad="users.ssn")
    plain = ev.decrypt(users, "ssn", "aws-kms://arn:aws:kms:…", aad="users.ssn", as_string=True)
    moved = ev.rewrap(users, "ssn", "aws-kms://arn:aws:kms:…")       # after a key rotation
    ev.census(users, "ssn").show()                                    # values per KEK version

Ciphertext columns are strings (the ``ev1:`` text form, the default) or binary. A value
that cannot be processed keeps its old value; with ``with_outcome=True`` the job adds
``envelope_outcome`` (``rewrapped``, ``current``, ``reencrypted``, ``encrypted``,
``decrypted`` or ``failed:<error>``) and ``envelope_kms_calls`` (the KMS calls each batch
cost, on its first row). The runnable job prints a summary from them::

    python -m envelope_sdk.spark rewrap --input PATH --column C --key URI --output PATH
    python -m envelope_sdk.spark reencrypt --input PATH --column C --key URI --output PATH [--aad A]
    python -m envelope_sdk.spark census --input PATH --column C

Input and output are Parquet directories. The output is written by Spark's committer: a
job that fails (a worker killed, say) commits no output, and running it again completes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

from .client import Client, from_text, to_text
from .errors import BatchError, EnvelopeError
from .parquet import client_for

__all__ = ["encrypt", "decrypt", "rewrap", "reencrypt", "census", "OUTCOME", "KMS_CALLS", "main"]

#: The outcome column a job adds with ``with_outcome=True``.
OUTCOME = "envelope_outcome"
#: The KMS calls column a job adds with ``with_outcome=True`` (each batch's, on its first row).
KMS_CALLS = "envelope_kms_calls"

AadLike = Union[str, bytes, None]


def _aad(aad: AadLike) -> bytes:
    if aad is None:
        return b""
    return aad.encode("utf-8") if isinstance(aad, str) else bytes(aad)


def _kms_calls(client: Client) -> int:
    stats = client.stats()
    return sum(v for k, v in stats.items() if k.startswith("kms_") and k.endswith("_calls") and isinstance(v, int))


def _failed(error: Exception) -> str:
    return f"failed:{type(error).__name__}"


def _value_bytes(value) -> Optional[bytes]:
    if value is None:
        return None
    return value.encode("ascii") if isinstance(value, str) else bytes(value)


Step = Callable[[Client, List[Optional[object]]], Tuple[List[Optional[object]], List[Optional[str]]]]


def _column_job(df, column: str, key_uri: str, step: Step, out_type, with_outcome: bool):
    """Runs ``step`` over ``column`` in every Arrow batch; the column gets ``out_type``."""
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    fields = []
    for f in df.schema.fields:
        fields.append(StructField(f.name, out_type, True) if f.name == column else f)
    if with_outcome:
        fields += [StructField(OUTCOME, StringType(), True), StructField(KMS_CALLS, IntegerType(), False)]
    schema = StructType(fields)
    if column not in df.columns:
        raise ValueError(f"column {column!r} is not in the DataFrame (columns: {', '.join(df.columns)})")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        client = client_for(key_uri)
        for batch in batches:
            # The counters cost an FFI call and a JSON parse: read only when asked for.
            before = _kms_calls(client) if with_outcome else 0
            values = batch.column(batch.schema.get_field_index(column)).to_pylist()
            new, outcomes = step(client, values)
            calls = _kms_calls(client) - before if with_outcome else 0
            arrays, names = [], []
            for name in batch.schema.names:
                names.append(name)
                if name == column:
                    arrays.append(pa.array(new, type=_arrow_type(out_type)))
                else:
                    arrays.append(batch.column(batch.schema.get_field_index(name)))
            if with_outcome:
                names += [OUTCOME, KMS_CALLS]
                arrays.append(pa.array(outcomes, type=pa.string()))
                arrays.append(pa.array([calls] + [0] * (batch.num_rows - 1) if batch.num_rows else [], type=pa.int32()))
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    return df.mapInArrow(run, schema)


def _arrow_type(spark_type):
    from pyspark.sql.types import BinaryType

    return pa.binary() if isinstance(spark_type, BinaryType) else pa.string()


def _spark_type(text: bool):
    from pyspark.sql.types import BinaryType, StringType

    return StringType() if text else BinaryType()


def _batch(fn, values: List[Optional[bytes]], aad: bytes) -> Tuple[List[Optional[bytes]], List[Optional[str]]]:
    """``fn`` (a batch call) on the non-null values; per-item failures keep ``None``."""
    present = [i for i, v in enumerate(values) if v is not None]
    out: List[Optional[bytes]] = [None] * len(values)
    outcomes: List[Optional[str]] = [None] * len(values)
    if not present:
        return out, outcomes
    try:
        results = fn([values[i] for i in present], aad)
    except BatchError as e:
        results = e.results
    for i, result in zip(present, results):
        if isinstance(result, Exception):
            outcomes[i] = _failed(result)
        else:
            out[i] = result
    return out, outcomes


def encrypt(df, column: str, key_uri: str, *, aad: AadLike = None, text: bool = True, with_outcome: bool = False):
    """``column`` (string or binary plaintexts) encrypted under ``key_uri``, bound to ``aad``:
    the ``ev1:`` text form (``text=True``) or binary. NULLs stay NULL."""
    aad_bytes = _aad(aad)

    def step(client: Client, values):
        plain = [None if v is None else (v.encode("utf-8") if isinstance(v, str) else bytes(v)) for v in values]
        cts, outcomes = _batch(client.encrypt_batch, plain, aad_bytes)
        if text:
            cts = [None if c is None else to_text(c) for c in cts]
        return cts, [o or ("encrypted" if v is not None else None) for o, v in zip(outcomes, values)]

    return _column_job(df, column, key_uri, step, _spark_type(text), with_outcome)


def decrypt(df, column: str, key_uri: str, *, aad: AadLike = None, as_string: bool = False, with_outcome: bool = False):
    """``column`` (ciphertexts in either form) decrypted: binary, or UTF-8 strings with
    ``as_string=True``. A value that does not decrypt becomes NULL (its outcome says why)."""
    aad_bytes = _aad(aad)

    def step(client: Client, values):
        binary: List[Optional[bytes]] = []
        early: List[Optional[str]] = []
        for v in values:
            try:
                binary.append(None if v is None else (from_text(v) if isinstance(v, str) else bytes(v)))
                early.append(None)
            except EnvelopeError as e:
                binary.append(None)
                early.append(_failed(e))
        plain, outcomes = _batch(client.decrypt_batch, binary, aad_bytes)
        if as_string:
            plain = [None if p is None else p.decode("utf-8") for p in plain]
        return plain, [e or o or ("decrypted" if v is not None else None) for e, o, v in zip(early, outcomes, values)]

    return _column_job(df, column, key_uri, step, _spark_type(as_string), with_outcome)


def _each(one: Callable[[Client, object], Tuple[object, str]]) -> Step:
    """A step applying ``one`` value by value: NULLs stay NULL, a failed value keeps its
    old value and its outcome names the error."""

    def step(client: Client, values):
        out, outcomes = [], []
        for v in values:
            if v is None:
                out.append(None)
                outcomes.append(None)
                continue
            try:
                new, outcome = one(client, v)
            except EnvelopeError as e:
                new, outcome = v, _failed(e)
            out.append(new)
            outcomes.append(outcome)
        return out, outcomes

    return step


def rewrap(df, column: str, key_uri: str, *, with_outcome: bool = False):
    """``column``'s ciphertexts moved to the current version of ``key_uri``'s KEK, header only
    (their bodies stay byte-identical): one KMS call per data key and worker."""

    def one(client: Client, v):
        new, changed = client.rewrap(v)
        return new, "rewrapped" if changed else "current"

    return _column_job(df, column, key_uri, _each(one), df.schema[column].dataType, with_outcome)


def reencrypt(df, column: str, key_uri: str, *, aad: AadLike = None, with_outcome: bool = False):
    """``column``'s ciphertexts decrypted and encrypted again under a new data key (after a
    suspected exposure), in the form each was in."""
    aad_bytes = _aad(aad)

    def one(client: Client, v):
        if isinstance(v, str):
            return to_text(client.reencrypt(from_text(v), aad_bytes)), "reencrypted"
        return client.reencrypt(bytes(v), aad_bytes), "reencrypted"

    return _column_job(df, column, key_uri, _each(one), df.schema[column].dataType, with_outcome)


def census(df, column: str):
    """A DataFrame of ``column``'s ciphertexts counted by ``provider``, ``key_id``,
    ``key_version``, ``suite`` and ``format_version`` (headers only, no key), with the
    unreadable ones under ``problem``."""
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType

    schema = StructType(
        [StructField(n, StringType(), True) for n in ("provider", "key_id", "key_version", "suite")]
        + [StructField("format_version", IntegerType(), True), StructField("problem", StringType(), True)]
    )
    if column not in df.columns:
        raise ValueError(f"column {column!r} is not in the DataFrame (columns: {', '.join(df.columns)})")

    def facts(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = {n: [] for n in schema.names}
            for v in batch.column(batch.schema.get_field_index(column)).to_pylist():
                if v is None:
                    continue
                try:
                    info = Client.inspect(v if isinstance(v, str) else bytes(v))
                    row = (info.provider, info.key_id, info.key_version, info.suite, info.format_version, None)
                except EnvelopeError as e:
                    row = (None, None, None, None, None, type(e).__name__)
                for n, x in zip(schema.names, row):
                    rows[n].append(x)
            yield pa.RecordBatch.from_pydict(rows, schema=pa.schema(
                [(n, pa.string()) for n in ("provider", "key_id", "key_version", "suite")]
                + [("format_version", pa.int32()), ("problem", pa.string())]))

    counted = df.select(column).mapInArrow(facts, schema)
    return counted.groupBy(*schema.names).count().withColumnRenamed("count", "values").orderBy(*schema.names)


def _summary(kind: str, path: str, outcomes) -> Tuple[str, int]:
    counts = {row[OUTCOME]: row["n"] for row in outcomes if row[OUTCOME] is not None}
    calls = sum(row["calls"] for row in outcomes)
    done = counts.pop("rewrapped" if kind == "rewrap" else "reencrypted", 0)
    current = counts.pop("current", 0)
    failed = {k.removeprefix("failed:"): n for k, n in counts.items() if k.startswith("failed:")}
    total = done + current + sum(failed.values())
    verb = "rewrapped" if kind == "rewrap" else "re-encrypted"
    line = f"{kind} {path}: {total} values, {done} {verb}, {current} already current, {sum(failed.values())} failed; {calls} KMS calls"
    for k, n in sorted(failed.items()):
        line += f"\n  failed ({k}): {n}"
    return line, sum(failed.values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The runnable job (``python -m envelope_sdk.spark``)."""
    parser = argparse.ArgumentParser(prog="python -m envelope_sdk.spark", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("rewrap", "reencrypt", "census"):
        p = sub.add_parser(name)
        p.add_argument("--input", required=True, help="a Parquet directory or file")
        p.add_argument("--column", required=True)
        if name != "census":
            p.add_argument("--key", required=True, help="the key URI")
            p.add_argument("--output", required=True, help="the Parquet directory to write (replaced)")
        if name == "reencrypt":
            p.add_argument("--aad", default="", help="the AAD the column's values were encrypted with")
        p.add_argument("--master", default=None, help="the Spark master (default: the session's, or local[*])")
        p.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    builder = SparkSession.builder.appName(f"envelope-{args.command}")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    df = spark.read.parquet(args.input)
    if args.command == "census":
        rows = [r.asDict() for r in census(df, args.column).collect()]
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"{'provider':<8} {'key':<24} {'version':>8} {'suite':<18} {'values':>10}  problem")
            for r in rows:
                print(f"{r['provider'] or '-':<8} {r['key_id'] or '-':<24} {r['key_version'] or '-':>8} "
                      f"{r['suite'] or '-':<18} {r['values']:>10}  {r['problem'] or ''}")
        return 0
    job = rewrap if args.command == "rewrap" else reencrypt
    kwargs = {"aad": args.aad} if args.command == "reencrypt" else {}
    result = job(df, args.column, args.key, with_outcome=True, **kwargs).cache()
    outcomes = (result.groupBy(OUTCOME).agg(F.count(F.lit(1)).alias("n"), F.sum(KMS_CALLS).alias("calls")).collect())
    result.drop(OUTCOME, KMS_CALLS).write.mode("overwrite").parquet(args.output)
    line, failed = _summary(args.command, args.input, [r.asDict() for r in outcomes])
    if args.json:
        print(json.dumps({"summary": line, "outcomes": {r[OUTCOME]: r["n"] for r in outcomes}}))
    else:
        print(line)
        print(f"  written: {args.output}")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
