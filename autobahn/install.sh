#!/usr/bin/env bash
# Install the Autobahn Testsuite (`wstest`) into a Python 2.7 virtualenv.
#
# autobahntestsuite is Python 2 only and there is no docker here, so we build a
# venv from pyenv's 2.7.18 and install an exactly pinned, known-good set of
# packages from PyPI.  Idempotent: a second run only checks and exits.
#
#   bash autobahn/install.sh            # -> /opt/autobahn-venv/bin/wstest
#   AUTOBAHN_VENV=/some/dir bash autobahn/install.sh
set -euo pipefail

VENV="${AUTOBAHN_VENV:-/opt/autobahn-venv}"
PY2="${AUTOBAHN_PY2:-/root/.pyenv/versions/2.7.18/bin/python}"

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
  echo "autobahn testsuite already installed in $VENV"
  exit 0
fi

if [[ ! -x "$PY2" ]]; then
  echo "error: Python 2.7 not found at $PY2." >&2
  echo "autobahntestsuite needs Python 2.7: install it with 'pyenv install 2.7.18'" >&2
  echo "or point AUTOBAHN_PY2 at a python2.7 interpreter." >&2
  exit 1
fi

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
