"""The atheris fuzz targets of fuzz/ run for a bounded time and find nothing.

The targets run at once, each as ``python fuzz/fuzz_NAME.py
-max_total_time=SECONDS``: SECONDS is 20, or WSOCKET_FUZZ_SECONDS. A crash
fails the test with libFuzzer's report and the crashing input (hex), which
replays with ``python fuzz/fuzz_NAME.py crash-file``.

On a busy machine the time box may end before MIN_RUNS inputs ran; the
target then runs again with ``-runs=MIN_RUNS`` (a count, not a time), so
the test checks an amount of work, never the machine's speed.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("frames", "handshake", "http")
SECONDS = int(os.environ.get("WSOCKET_FUZZ_SECONDS", "20"))
MIN_RUNS = 200  # the seeds replayed, then mutations: far more than this on an idle machine
TOP_UP_TIMEOUT = 600  # seconds for MIN_RUNS inputs however slow the machine
DONE = re.compile(r"^Done (\d+) runs in (\d+) second\(s\)$", re.MULTILINE)


def _command(name, artifacts, *limits):
    return [sys.executable, str(ROOT / "fuzz" / ("fuzz_%s.py" % name)), *limits,
            "-rss_limit_mb=1024", "-timeout=30", "-artifact_prefix=%s/" % artifacts]


def _finish(process, output, timeout):
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        output.close()


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory):
    """{target: (exit status, libFuzzer's output, artifact folder)}, all run in parallel."""
    folder = tmp_path_factory.mktemp("fuzz")
    started = {}
    for name in TARGETS:
        artifacts = folder / name
        artifacts.mkdir()
        output = open(folder / (name + ".log"), "wb")
        process = subprocess.Popen(
            _command(name, artifacts, "-max_total_time=%d" % SECONDS), cwd=str(folder),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        started[name] = (process, output, artifacts)
    results = {}
    for name, (process, output, artifacts) in started.items():
        status = _finish(process, output, SECONDS + 90)
        log_path = folder / (name + ".log")
        done = DONE.search(log_path.read_text(errors="replace"))
        if status == 0 and done is not None and int(done.group(1)) < MIN_RUNS:
            # The machine was too busy for MIN_RUNS in the time box: count instead.
            output = open(log_path, "ab")
            process = subprocess.Popen(
                _command(name, artifacts, "-runs=%d" % MIN_RUNS), cwd=str(folder),
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
            status = _finish(process, output, TOP_UP_TIMEOUT)
        results[name] = (status, log_path.read_text(errors="replace"), artifacts)
    return results


@pytest.mark.timeout(SECONDS + 150 + TOP_UP_TIMEOUT)
@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_runs_clean(fuzz_runs, name):
    status, log, artifacts = fuzz_runs[name]
    crashes = ["%s: %s" % (path.name, path.read_bytes().hex()) for path in artifacts.iterdir()]
    assert status == 0, "fuzz_%s.py exited with %r\n%s\n%s" % (
        name, status, log[-6000:], "\n".join(crashes))
    assert crashes == []
    seeds = re.search(r"^INFO: seed corpus: files: (\d+) ", log, re.MULTILINE)
    assert seeds is not None and int(seeds.group(1)) > 0, log[-3000:]
    done = DONE.findall(log)  # the time box, then the top-up if there was one
    assert done, log[-3000:]
    assert int(done[0][1]) >= SECONDS, done
    assert max(int(runs) for runs, _ in done) >= MIN_RUNS, done
