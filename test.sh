#!/usr/bin/env bash
# README's test command: install what the tests need, then run them.
#
#   ./test.sh                  everything below, then the whole suite
#   ./test.sh tests/test_cli.py -x    the same installs, then pytest with these arguments
#
# 1. Debian packages (the list is DEBIAN_PACKAGES below): apt-get install when
#    this runs as root or sudo works without a password; otherwise it stops
#    before the tests and prints the exact command to run.
# 2. The Autobahn Testsuite (Python 2.7) into .autobahn/venv: autobahn/install.sh.
# 3. The Python dependencies into .venv: pip install -e '.[test]'.
# 4. pytest.
# .ci/run calls this script. Everything but the Debian packages stays in the
# checkout (.venv, .autobahn: both ignored by git).
set -euo pipefail
cd "$(dirname "$0")"

# The programs the tests run for real. Add a package here when a test needs one.
DEBIAN_PACKAGES=(
    chromium        # tests/test_demo_browser.py drives /usr/bin/chromium with Playwright
    nginx           # tests/test_nginx.py puts nginx in front of the app
    redis-server    # tests/test_hub_redis.py starts its own redis-server on a free port
    tinyproxy       # the client's HTTP CONNECT proxy tests
    microsocks      # the client's SOCKS5 proxy tests
    gcc libc6-dev   # the C accelerator, uwsgi (built by pip) and wsaccel (Autobahn)
)
# Debian's own python3 needs its venv module and headers (pyenv's has both).
if [ "$(command -v python3)" = /usr/bin/python3 ]; then
    DEBIAN_PACKAGES+=(python3-venv python3-dev)
fi

python3 - <<'PY' || { echo "./test.sh: wsocket needs Python 3.9 or newer as python3" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 9))
PY

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo)
    else
        echo "./test.sh: these Debian packages are missing: ${missing[*]}" >&2
        echo "install them, then run ./test.sh again:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "./test.sh: installing Debian packages: ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

bash autobahn/install.sh

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "" 2>/dev/null; then
    rm -rf .venv
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e '.[test]'

exec .venv/bin/python -m pytest "$@"
