# Sourced by the test scripts: project-local tools, installed on first use, fast when present.
# Everything lands under .tools/ (git-ignored).

ENVELOPE_ROOT=${ENVELOPE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ENVELOPE_TOOLS=$ENVELOPE_ROOT/.tools
ENVELOPE_VENV=$ENVELOPE_TOOLS/venv

# ensure_venv: creates the project's virtualenv unless it exists.
ensure_venv() {
    if [ ! -x "$ENVELOPE_VENV/bin/python" ]; then
        python3 -m venv "$ENVELOPE_VENV"
    fi
}

# ensure_venv_tool "PACKAGE[==VERSION] [MORE…]" COMMAND: installs the space-separated packages
# into the project's virtualenv unless COMMAND is already there.
ensure_venv_tool() {
    local package=$1 command=$2
    ensure_venv
    if [ ! -x "$ENVELOPE_VENV/bin/$command" ]; then
        echo "installing $package into $ENVELOPE_VENV" >&2
        # shellcheck disable=SC2086 # a space-separated list of requirements
        "$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check $package
    fi
    [ -x "$ENVELOPE_VENV/bin/$command" ] || { echo "$package did not provide $command" >&2; return 1; }
}

# ensure_build_deps: the Debian packages the build links against: libsqlite3-dev (the DEK
# store's SQLite, linked dynamically) and pkg-config. Installed with apt-get when missing.
ensure_build_deps() {
    if pkg-config --exists sqlite3 2>/dev/null; then
        return 0
    fi
    echo "installing Debian's libsqlite3-dev and pkg-config" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsqlite3-dev pkg-config >/dev/null ||
        { $sudo apt-get update -q >/dev/null &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsqlite3-dev pkg-config >/dev/null; }
    pkg-config --exists sqlite3 || { echo "libsqlite3-dev did not install sqlite3.pc" >&2; return 1; }
}

# free_port: prints a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS: waits until URL answers (any HTTP status).
wait_http() {
    local url=$1 seconds=$2
    python3 - "$url" "$seconds" <<'PY'
import sys, time, urllib.request, urllib.error
url, deadline = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(f"{url} did not answer within {sys.argv[2]} s")
PY
}

# ensure_apt_package PACKAGE FILE: installs Debian's PACKAGE with apt-get when FILE is
# missing (FILE: what the package provides, e.g. /usr/bin/age).
ensure_apt_package() {
    local package=$1 file=$2
    if [ -e "$file" ]; then
        return 0
    fi
    echo "installing Debian's $package" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null ||
        { $sudo apt-get update -q >/dev/null &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null; }
    [ -e "$file" ] || { echo "the $package package did not install $file" >&2; return 1; }
}

# ensure_chromium: Debian's chromium (/usr/bin/chromium), for the evidence page's browser test.
ensure_chromium() {
    ensure_apt_package chromium /usr/bin/chromium
}

# ensure_playwright: playwright-core (the driver only: it uses Debian's chromium, never
# downloads a browser) under .tools/browser.
PLAYWRIGHT_VERSION=1.56.1
ensure_playwright() {
    local dir=$ENVELOPE_TOOLS/browser
    if [ -f "$dir/node_modules/playwright-core/package.json" ] &&
        grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$dir/node_modules/playwright-core/package.json"; then
        return 0
    fi
    echo "installing playwright-core $PLAYWRIGHT_VERSION into $dir" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund --no-save "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null)
}

# ensure_java: a JDK (17 or newer, javac on PATH) and Maven, from Debian when missing.
ensure_java() {
    command -v javac >/dev/null || ensure_apt_package openjdk-17-jdk-headless /usr/lib/jvm/java-17-openjdk-amd64/bin/javac
    command -v mvn >/dev/null || ensure_apt_package maven /usr/bin/mvn
}

# maven ARGS...: Maven in batch mode, offline when every artifact is already in the local
# repository (a second run resolves nothing), online when something is missing; any other
# failure (a failing test) is printed and returned.
maven() {
    local log status=0
    log=$(mktemp)
    mvn -B -q -Dstyle.color=never -o "$@" >"$log" 2>&1 || status=$?
    if [[ $status -ne 0 ]] && grep -qE "offline mode|Could not resolve|Cannot access .* in offline|PluginResolutionException|DependencyResolutionException" "$log"; then
        rm -f "$log"
        mvn -B -q -Dstyle.color=never "$@"
        return
    fi
    # Maven 3.8 prints colour resets even in batch mode.
    sed 's/\x1b\[[0-9;]*m//g' "$log"
    rm -f "$log"
    return "$status"
}

# PySpark, pinned: Spark 4.3 carries parquet-java 1.17.0 and Hadoop 3.5.0, the versions
# bindings/java/pom.xml compiles against.
PYSPARK_VERSION=4.3.0
