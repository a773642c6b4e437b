#!/usr/bin/env bash
# Spark in local mode (local[2]): with envelope as Parquet's KMS, Spark (parquet-java with
# dev.envelope.parquet.EnvelopeKmsClient from bindings/java) and pyarrow (envelope_sdk.parquet)
# read each other's encrypted files and the CLI rotates what Spark wrote (sidecars only); the
# column jobs of envelope_sdk.spark (encrypt, decrypt, rewrap across 8 partitions, census, the
# runnable job). Installs the pinned PySpark and pandas 2 (mapInArrow needs pandas; PySpark
# 4.3 warns that it does not fully support pandas 3) into the
# project's virtualenv; builds the Java package when scripts/test-java.sh has not.
#
#   scripts/test-spark.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_java
# The Java package, unless scripts/test-java.sh built it from the current sources.
if [[ ! -f bindings/java/target/classpath.txt ]] ||
    [[ -n $(find bindings/java/src bindings/java/pom.xml -newer bindings/java/target/classpath.txt) ]]; then
    scripts/test-java.sh
fi
ensure_venv
if ! "$ENVELOPE_VENV/bin/python" -c "import pandas, pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION' or int(pandas.__version__.split('.')[0]) >= 3)" 2>/dev/null; then
    echo "installing pyspark==$PYSPARK_VERSION and pandas into $ENVELOPE_VENV" >&2
    "$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION" "pandas>=2.2,<3"
fi
if ! "$ENVELOPE_VENV/bin/python" -c "import envelope_sdk.parquet" 2>/dev/null; then
    cargo build --release --locked -p envelope-ffi
    "$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
    "$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check "./bindings/python[test]"
fi
if [[ -z ${ENVELOPE_CLI:-} ]]; then
    cargo build -q -p envelope-cli --locked
    export ENVELOPE_CLI=$PWD/target/debug/envelope
fi
ENVELOPE_JAVA_CLASSPATH=$(cat bindings/java/target/classpath.txt)
export ENVELOPE_JAVA_CLASSPATH
(cd bindings/python && "$ENVELOPE_VENV/bin/python" -m pytest -q -p no:cacheprovider tests_spark)
