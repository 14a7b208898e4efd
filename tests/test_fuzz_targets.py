"""The atheris fuzz targets of fuzz/ run for a bounded time and find nothing.

The targets run at once, each as ``python fuzz/fuzz_NAME.py
-max_total_time=SECONDS``: SECONDS is 20, or WSOCKET_FUZZ_SECONDS. A crash
fails the test with libFuzzer's report and the crashing input (hex), which
replays with ``python fuzz/fuzz_NAME.py crash-file``.
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
MIN_RUNS = 200  # the seeds replayed, then mutations: far more than this in any run


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory):
    """{target: (exit status, libFuzzer's output, artifact folder)}, all run in parallel."""
    folder = tmp_path_factory.mktemp("fuzz")
    started = {}
    for name in TARGETS:
        artifacts = folder / name
        artifacts.mkdir()
        output = open(folder / (name + ".log"), "wb")
        command = [sys.executable, str(ROOT / "fuzz" / ("fuzz_%s.py" % name)),
                   "-max_total_time=%d" % SECONDS, "-rss_limit_mb=1024", "-timeout=30",
                   "-artifact_prefix=%s/" % artifacts]
        process = subprocess.Popen(command, cwd=str(folder), stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
        started[name] = (process, output, artifacts)
    results = {}
    for name, (process, output, artifacts) in started.items():
        try:
            status = process.wait(SECONDS + 90)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            output.close()
        results[name] = (status, (folder / (name + ".log")).read_text(errors="replace"),
                         artifacts)
    return results


@pytest.mark.timeout(SECONDS + 150)
@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_target_runs_clean(fuzz_runs, name):
    status, log, artifacts = fuzz_runs[name]
    crashes = ["%s: %s" % (path.name, path.read_bytes().hex()) for path in artifacts.iterdir()]
    assert status == 0, "fuzz_%s.py exited with %r\n%s\n%s" % (
        name, status, log[-6000:], "\n".join(crashes))
    assert crashes == []
    seeds = re.search(r"^INFO: seed corpus: files: (\d+) ", log, re.MULTILINE)
    assert seeds is not None and int(seeds.group(1)) > 0, log[-3000:]
    done = re.search(r"^Done (\d+) runs in (\d+) second\(s\)$", log, re.MULTILINE)
    assert done is not None, log[-3000:]
    assert int(done.group(1)) >= MIN_RUNS, done.group(0)
    assert int(done.group(2)) >= SECONDS, done.group(0)
