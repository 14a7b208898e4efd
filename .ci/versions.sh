#!/usr/bin/env bash
# The protocol, server and fuzz-target tests on every CPython the package
# declares besides 3.11, which .ci/run's README command covers with the
# whole suite. Each version gets its own virtualenv, .venv-3.X (gitignored),
# reused when it is there; pip's cache makes a fresh one quick too.
#
#   bash .ci/versions.sh             3.9, 3.10, 3.12 and 3.13, two at a time
#   bash .ci/versions.sh 3.9 3.13    just those
#
# Pythons come from pyenv (~/.pyenv/versions/3.X.*, the newest patch
# release), else from pythonX.Y on the PATH. Each version's output goes to
# reports/versions/3.X.log, printed whole when that version fails; the last
# line adds up their pytest counts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then VERSIONS=("$@"); else VERSIONS=(3.9 3.10 3.12 3.13); fi
PARALLEL=${WSOCKET_VERSIONS_PARALLEL:-2}
PYENV_ROOT=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "${HOME:-/root}/.pyenv")}
TESTS=(
    tests/protocol tests/test_websocket.py tests/test_client.py tests/test_server_http.py
    tests/test_server_websocket.py tests/test_middleware.py tests/test_cli.py
    tests/test_limits.py tests/test_speedups.py tests/test_fuzz_targets.py
    tests/test_loop_handshakes.py tests/test_direct_paths.py tests/test_request_environ.py
)
LOGS=reports/versions
mkdir -p "$LOGS"

find_python() {
    local version=$1 found
    found=$(ls -d "$PYENV_ROOT"/versions/"$version".* 2>/dev/null \
            | grep -E "/$version\.[0-9]+$" | sort -V | tail -n 1 || true)
    [ -n "$found" ] && found="$found/bin/python$version"
    if [ -z "$found" ] || ! "$found" -c "" 2>/dev/null; then
        found=$(command -v "python$version" || true)
    fi
    if [ -z "$found" ] || ! "$found" -c "" 2>/dev/null; then
        echo "no CPython $version: install it with 'pyenv install $version'" >&2
        return 1
    fi
    echo "$found"
}

run_version() {
    local version=$1 python venv websockets atheris
    python=$(find_python "$version")
    venv=.venv-$version
    # Installs one at a time: the editable builds share src/wsocket.egg-info.
    exec 9>"$LOGS/.install.lock"
    flock 9
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    # websockets 16 needs Python 3.10; 15.x is the last for 3.9. atheris 3
    # has wheels for 3.11 and later only, and its sdist needs clang's
    # libFuzzer: 2.3 is the one with wheels for 3.9 and 3.10.
    case "$version" in
        3.9) websockets="websockets>=13,<16" atheris="atheris>=2.3,<3" ;;
        3.10) websockets="websockets>=13" atheris="atheris>=2.3,<3" ;;
        *) websockets="websockets>=13" atheris="atheris>=3" ;;
    esac
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary atheris \
        -e . "pytest>=7" pytest-timeout "$websockets" trustme hypothesis "$atheris"
    flock -u 9
    exec 9>&-
    "$venv/bin/python" --version
    WSOCKET_FUZZ_SECONDS=${WSOCKET_FUZZ_SECONDS:-5} \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
}

failed_versions=()
total_passed=0
total_failed=0
pids=()
names=()
start() {
    local version=$1
    ( run_version "$version" ) >"$LOGS/$version.log" 2>&1 &
    pids+=("$!")
    names+=("$version")
}
finish_one() {  # waits for the oldest job still running
    local pid=${pids[0]} version=${names[0]} status=0 summary passed failed
    wait "$pid" || status=$?
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
    summary=$(tail -n 1 "$LOGS/$version.log")
    passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | cut -d' ' -f1 || true)
    failed=0
    for count in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | cut -d' ' -f1 || true); do
        failed=$(( failed + count ))
    done
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1  # no pytest count (the install failed, say): the version counts as one
    fi
    total_passed=$(( total_passed + ${passed:-0} ))
    total_failed=$(( total_failed + failed ))
    echo "$(grep -m 1 -E '^Python [0-9]' "$LOGS/$version.log" || echo "Python $version"): $summary"
    if [ "$status" -ne 0 ]; then
        failed_versions+=("$version")
        echo "---- $LOGS/$version.log ----"
        cat "$LOGS/$version.log"
        echo "---- end of $LOGS/$version.log ----"
    fi
}

for version in "${VERSIONS[@]}"; do
    if [ "${#pids[@]}" -ge "$PARALLEL" ]; then finish_one; fi
    start "$version"
done
while [ "${#pids[@]}" -gt 0 ]; do finish_one; done

if [ "${#failed_versions[@]}" -gt 0 ]; then
    echo "failed on Python ${failed_versions[*]}"
    echo "versions: $total_passed passed, $total_failed failed"
    exit 1
fi
echo "versions: $total_passed passed, $total_failed failed"
