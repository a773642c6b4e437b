#!/usr/bin/env bash
# The Java package (bindings/java): builds the C library, bundles it into the jar (JNA's
# linux-x86-64/ layout) and runs the JUnit tests through Maven Surefire against that bundled
# copy. Leaves bindings/java/target/envelope-sdk-VERSION.jar and, in
# bindings/java/target/classpath.txt, the jars Spark needs beside it (the package and JNA).
#
#   scripts/test-java.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_build_deps
ensure_java
cargo build --release --locked -p envelope-ffi

version=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "envelope-ffi"))')
pom_version=$(sed -n 's|^  <version>\(.*\)</version>|\1|p' bindings/java/pom.xml | head -1)
if [[ $version != "$pom_version" ]]; then
    echo "bindings/java/pom.xml has version $pom_version; the workspace is $version" >&2
    exit 1
fi

native=bindings/java/target/native/linux-x86-64
mkdir -p "$native"
cp target/release/libenvelope_ffi.so "$native/"
# The tests load the copy in the jar's resources, not one named by the environment.
(cd bindings/java && unset ENVELOPE_FFI_LIB && maven package)

jar=$PWD/bindings/java/target/envelope-sdk-$version.jar
# The listing is read whole before matching: `unzip | grep -q` under pipefail fails when grep
# exits at the match and unzip is killed by SIGPIPE on its next write.
python3 -c 'import sys, zipfile; sys.exit("linux-x86-64/libenvelope_ffi.so" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$jar" ||
    { echo "$jar does not carry linux-x86-64/libenvelope_ffi.so" >&2; exit 1; }
(cd bindings/java && maven org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath \
    -DincludeScope=runtime -Dmdep.outputFile=target/runtime-classpath.txt)
echo "$jar:$(cat bindings/java/target/runtime-classpath.txt)" > bindings/java/target/classpath.txt
echo "java: $(grep -h 'Tests run' bindings/java/target/surefire-reports/*.txt | awk -F'[ ,]+' '{n += $3} END {print n}') JUnit tests passed; $jar"
