#!/usr/bin/env bash
# Install the Autobahn Testsuite (`wstest`) into a Python 2.7 virtualenv.
#
# autobahntestsuite is Python 2 only and there is no docker here, so we build a
# venv from a Python 2.7 and install an exactly pinned, known-good set of
# packages from PyPI.  Idempotent: a second run only checks and exits.
# README's test command (./test.sh) runs it; no test installs anything.
#
#   bash autobahn/install.sh            # -> .autobahn/venv/bin/wstest in the checkout
#   AUTOBAHN_VENV=/some/dir bash autobahn/install.sh
#
# Python 2.7 is, in this order: $AUTOBAHN_PY2; pyenv's newest 2.7.x; python2.7
# on the PATH; else `pyenv install 2.7.18` where pyenv is installed.  Where
# none can be had (Debian 12 and later ship no Python 2), it says so, writes
# the reason to .autobahn/unavailable.txt (tests/test_autobahn.py skips with
# it) and exits 0: every other test still runs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${AUTOBAHN_VENV:-$ROOT/.autobahn/venv}"
UNAVAILABLE="$ROOT/.autobahn/unavailable.txt"
PYENV_ROOT="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "${HOME:-/root}/.pyenv")}"

# Every package is pinned and installed with --no-deps, so pip's resolver can
# never drift to a newer release that dropped Python 2.  These are the newest
# versions that still support 2.7 and that autobahntestsuite 0.8.2 accepts.
# zope.interface is 5.4.0 (not 5.5.x) because it has a cp27 manylinux wheel.
# wsaccel is the only C extension compiled from source (needs gcc + headers);
# autobahn, txaio and PyHamcrest are pure-Python sdists.
PINS=(
  autobahntestsuite==0.8.2
  autobahn==0.10.9
  txaio==2.1.0
  wsaccel==0.6.6
  ujson==2.0.3
  Twisted==20.3.0
  zope.interface==5.4.0
  Automat==22.10.0
  attrs==21.4.0
  constantly==15.1.0
  hyperlink==21.0.0
  idna==2.10
  incremental==22.10.0
  PyHamcrest==1.10.1
  six==1.17.0
  typing==3.10.0.0
  pyOpenSSL==21.0.0
  cryptography==3.3.2
  cffi==1.15.1
  pycparser==2.21
  enum34==1.1.10
  ipaddress==1.0.23
  service-identity==21.1.0
  pyasn1==0.5.1
  pyasn1-modules==0.3.0
  klein==20.6.0
  Tubes==0.2.1
  Werkzeug==1.0.1
  Jinja2==2.11.3
  MarkupSafe==1.1.1
  unittest2==1.1.0
  argparse==1.4.0
  linecache2==1.0.0
  traceback2==1.4.0
)
STAMP="$VENV/.autobahn-pins"

# Fast path: already installed with exactly these pins and wstest starts.
if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "${PINS[*]}" ]] \
   && "$VENV/bin/wstest" --help >/dev/null 2>&1; then
  rm -f "$UNAVAILABLE"
  echo "autobahn testsuite already installed in $VENV"
  exit 0
fi

find_python2() {
  local found
  if [[ -n "${AUTOBAHN_PY2:-}" ]]; then echo "$AUTOBAHN_PY2"; return; fi
  found=$(ls -d "$PYENV_ROOT"/versions/2.7.* 2>/dev/null | grep -E '/2\.7\.[0-9]+$' \
          | sort -V | tail -n 1 || true)
  if [[ -n "$found" && -x "$found/bin/python2.7" ]]; then echo "$found/bin/python2.7"; return; fi
  command -v python2.7 || true
}

PY2="$(find_python2)"
if [[ -z "$PY2" ]] && command -v pyenv >/dev/null; then
  echo "no Python 2.7: trying 'pyenv install 2.7.18' (the Autobahn Testsuite needs it)"
  if pyenv install --skip-existing 2.7.18; then PY2="$(find_python2)"; fi
fi
if [[ -z "$PY2" ]] || ! "$PY2" -c "" 2>/dev/null; then
  mkdir -p "$(dirname "$UNAVAILABLE")"
  reason="no Python 2.7${PY2:+ (AUTOBAHN_PY2=$PY2 does not run)}, which the Autobahn Testsuite needs: \
install it with 'pyenv install 2.7.18' or point AUTOBAHN_PY2 at a python2.7, then run ./test.sh again"
  echo "$reason" > "$UNAVAILABLE"
  echo "warning: $reason" >&2
  echo "warning: tests/test_autobahn.py will be skipped" >&2
  exit 0
fi
rm -f "$UNAVAILABLE"

# Start clean, but only ever delete something that is a virtualenv.
if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" ]]; then
  echo "error: $VENV exists and is not a virtualenv; refusing to replace it" >&2
  exit 1
fi

# Python 2.7 has no `venv` module. Run virtualenv 20.15.1 (the last release
# installable on 2.7) from a throw-away dir so pyenv's 2.7 stays untouched;
# it seeds the venv with its bundled pip 20.3.4 / setuptools 44.1.1 offline.
tool="$(mktemp -d)"
trap 'rm -rf "$tool"' EXIT
"$PY2" -m pip install -q --disable-pip-version-check --target "$tool" virtualenv==20.15.1
rm -rf "$VENV"
PYTHONPATH="$tool" "$PY2" -m virtualenv -q --no-periodic-update "$VENV"

# PYTHONWARNINGS hides pip's and cryptography's "Python 2 is deprecated" noise.
export PYTHONWARNINGS=ignore
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "${PINS[@]}"
"$VENV/bin/pip" check --disable-pip-version-check
"$VENV/bin/wstest" --help >/dev/null
echo "${PINS[*]}" > "$STAMP"
echo "autobahn testsuite installed: $VENV/bin/wstest"
