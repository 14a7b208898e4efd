"""``python -m bench``'s servers and its ratio table, run for real (no figure is judged).

Every launcher in bench/servers is started the way the bench starts it
(``bench.runner.start_server``: ``--port 0``, then ``READY <port>``), echoes
text, binary and a fragmented message to the ``websockets`` client, answers
its close, broadcasts with ``--broadcast``, logs nothing, and ends at once on
SIGTERM. Then one very short ``python -m bench`` run against picows and the C
ceiling checks that the ratio table is computed and written. Benchmarks are
not tests: no timing is asserted anywhere here.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from bench import runner
from bench.servers import C_CEILING, PEER, SERVERS, missing
from websockets.sync.client import connect

from tests.netutil import ROOT, TIMEOUT

STOP_TIMEOUT = 30.0
BENCH_TIMEOUT = 240.0


def _skip_if_missing(name):
    if missing(name):
        pytest.skip("%s is not installed here (%s); pip install -e '.[test]' brings it"
                    % (name, ", ".join(missing(name))))


class LaunchedServer:
    """One bench launcher started like the bench does it; stopped whatever happens."""

    def __init__(self, name, log_path, broadcast=False):
        self.name = name
        self.log_path = log_path
        self.process, self.port = runner.start_server(
            name, None, log_path, extra_arguments=["--broadcast"] if broadcast else [])
        self.url = "ws://127.0.0.1:%d/" % self.port

    def log(self):
        return self.log_path.read_text(errors="replace")

    def terminate(self):
        """SIGTERM alone, then the exit status (None: still running after the timeout)."""
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        runner.stop(self.process)


@pytest.fixture
def launch(tmp_path):
    started = []

    def start(name, broadcast=False):
        _skip_if_missing(name)
        server = LaunchedServer(name, tmp_path / ("%s.log" % name), broadcast)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("name", list(SERVERS))
def test_launcher_echoes_and_stops(launch, name):
    server = launch(name)
    big = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length field
    with connect(server.url, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                 max_size=None) as client:
        client.send("héllo, wsocket ✓")
        assert client.recv(timeout=TIMEOUT) == "héllo, wsocket ✓"
        client.send(b"\x00\xff binary \x80")
        assert client.recv(timeout=TIMEOUT) == b"\x00\xff binary \x80"
        client.send(["frag", "mented ", "text"])
        assert client.recv(timeout=TIMEOUT) == "fragmented text"
        client.send(big)
        assert client.recv(timeout=TIMEOUT) == big
    # The close handshake was answered with the client's code.
    assert client.protocol.close_rcvd is not None
    assert client.protocol.close_rcvd.code == 1000
    status = server.terminate()
    assert status in (0, -signal.SIGTERM), "%s did not end on SIGTERM (status %s)" % (
        name, status)
    assert server.log() == "", "%s logged:\n%s" % (name, server.log()[-4000:])


@pytest.mark.parametrize("name", [PEER, C_CEILING])
def test_new_launcher_broadcasts(launch, name):
    server = launch(name, broadcast=True)
    with connect(server.url, open_timeout=TIMEOUT) as sender, \
            connect(server.url, open_timeout=TIMEOUT) as listener:
        # The second client is registered once it has had a message (its
        # handshake done on the server's side too): a ping round-trip first.
        listener.ping().wait(TIMEOUT)
        sender.ping().wait(TIMEOUT)
        sender.send(b"to everyone")
        assert sender.recv(timeout=TIMEOUT) == b"to everyone"
        assert listener.recv(timeout=TIMEOUT) == b"to everyone"
        sender.send("text too")
        assert listener.recv(timeout=TIMEOUT) == "text too"
        assert sender.recv(timeout=TIMEOUT) == "text too"
    assert server.terminate() in (0, -signal.SIGTERM)
    assert server.log() == ""


def _run_bench(command):
    """Run ``python -m bench ...`` to its end: (report, progress); it must succeed."""
    process = subprocess.Popen(command, cwd=str(ROOT), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BENCH_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    report, progress = stdout.decode(), stderr.decode()
    assert process.returncode == 0, progress[-4000:]
    return report, progress


def test_bench_reports_ratios_to_picows_and_the_c_ceiling(tmp_path):
    """One short run of ``python -m bench``: the ratio table and the JSON's ratios exist."""
    for name in (PEER, C_CEILING):
        _skip_if_missing(name)
    output = tmp_path / "result.json"
    servers = ["wsocket", "wsocket-events", PEER, C_CEILING]
    command = [sys.executable, "-m", "bench", "--duration", "0.3", "--warmup", "0.1",
               "--repeat", "1", "--no-check", "--scenarios", "echo-16",
               "--servers", ",".join(servers), "--output", str(output)]
    report, progress = _run_bench(command)
    data = json.loads(output.read_text())
    assert {entry["server"] for entry in data["summary"]} == set(servers)
    assert all("error" not in entry for entry in data["summary"]), data["summary"]
    pairs = {(entry["server"], entry["reference"]): entry["ratio"] for entry in data["ratios"]}
    assert set(pairs) == {("wsocket", PEER), ("wsocket-events", PEER),
                          ("wsocket", C_CEILING), ("wsocket-events", C_CEILING),
                          (PEER, C_CEILING)}
    summary = {entry["server"]: entry for entry in data["summary"]}
    for entry in data["ratios"]:
        ours, reference = summary[entry["server"]], summary[entry["reference"]]
        assert entry["ratio"] == pytest.approx(ours["msg_per_s"] / reference["msg_per_s"])
        assert entry["cpu_per_msg_ratio"] == pytest.approx(
            ours["server_us_per_msg"] / reference["server_us_per_msg"])
    assert "| scenario | wsocket ÷ picows | wsocket-events ÷ picows | wsocket ÷ C ceiling " \
           "| wsocket-events ÷ C ceiling | picows ÷ C ceiling |" in report
    assert data["versions"].get("picows") and data["versions"].get("uvloop")


@pytest.mark.parametrize("generator", ["c", "python"])
def test_opening_run_reports_the_cpu_of_the_opening(tmp_path, generator):
    """open-5000: the CPU shares on its line are those of the opening, not of the echo after.

    The line used to give the whole run's shares, which put the generator
    at 90% and the server at 40% although the server was the busy one.
    """
    output = tmp_path / "result.json"
    command = [sys.executable, "-m", "bench", "--repeat", "1", "--no-check", "--warmup", "0.1",
               "--duration", "0.3", "--loadgen", generator, "--scenarios", "open-5000",
               "--servers", "wsocket-events", "--output", str(output)]
    _, progress = _run_bench(command)
    (run,) = json.loads(output.read_text())["runs"]
    assert run["held"] == 5000 and not run["error"], run
    # Shares of one CPU during the opening: each side did some of the work.
    assert 0 < run["opening_server_cpu_util"] < 2.5
    assert 0 < run["opening_cpu_util"] < 2.5
    assert run["opening_server_cpu_util"] == pytest.approx(
        run["server_us_per_conn"] * 1e-6 * run["held"] / run["connect_s"])
    assert "(opening: server CPU %.0f%%, generator %.0f%%)" % (
        100 * run["opening_server_cpu_util"], 100 * run["opening_cpu_util"]) in progress
