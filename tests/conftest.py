"""Fixtures that run wsocket's server for real: as ``python -m wsocket`` or in-process."""

import os
import re
import select
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import trustme

from tests.netutil import ROOT
from tests.serverproc import command_line, processes_tagged, stop_process
from tests.tlspeers import taking_turns
from wsocket import make_server

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Every process this test session starts inherits the tag: whatever still
# runs at the end of the session was leaked by a fixture or a test.
SESSION_TAG = "WSOCKET_TEST_SESSION"
os.environ[SESSION_TAG] = uuid.uuid4().hex
LEAK_GRACE = 10.0  # seconds for processes stopped at the very end to go


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a test left a process running; kill it so it harms no later run."""
    deadline = time.monotonic() + LEAK_GRACE
    leaked = processes_tagged(SESSION_TAG, os.environ[SESSION_TAG])
    while leaked and time.monotonic() < deadline:
        time.sleep(0.5)
        leaked = processes_tagged(SESSION_TAG, os.environ[SESSION_TAG])
    if not leaked:
        return
    lines = ["%d: %s" % (pid, command_line(pid)) for pid in leaked]
    for pid in leaked:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "leaked processes, still running after the tests (now killed):\n  " + \
        "\n  ".join(lines)
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BANNER = re.compile(r"^wsocket serving on ((https?)://(\[[^\]]+\]|[^:/\[\]]+):(\d+)/) "
                     r"\(Ctrl-C to stop\)$")


class ServerProcess:
    """A ``python -m wsocket ...`` subprocess and the address it announced."""

    def __init__(self, proc, stderr_path, url, scheme, host, port):
        self.proc = proc
        self.stderr_path = stderr_path
        self.url = url  # e.g. http://127.0.0.1:PORT/
        self.scheme = scheme
        self.host = host.strip("[]")
        self.port = port
        self.ws_url = ("wss" if scheme == "https" else "ws") + url[len(scheme):]

    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; kills on timeout. Returns the exit status."""
        stop_process(self.proc, timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn(args, cwd=ROOT, stderr_path=None, module="wsocket", ignore_sigint=False):
    """Start ``python -m wsocket *args``; stdout is a pipe, stderr goes to a file.

    ``module`` runs another module's ``-m`` instead; ``ignore_sigint`` starts
    it as a shell starts a background job (``&``): with SIGINT ignored.
    """
    stderr_file = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=str(cwd),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr_file, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                preexec_fn=_ignore_sigint if ignore_sigint else None)
    finally:
        if stderr_path:
            stderr_file.close()


def read_banner(proc, timeout=START_TIMEOUT):
    """The first stdout line, read without ever blocking past ``timeout``."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no banner within %.0f s; stdout so far %r" % (timeout, data))
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("wsocket exited (status %r) before its banner; stdout %r"
                                   % (proc.wait(5), data))
            data += chunk
    return data.split(b"\n", 1)[0].decode()


def _process_starter(folder):
    """A ``start(*args)`` that runs ``python -m wsocket *args``, and the list it fills."""
    started = []

    def start(*args, cwd=ROOT, timeout=START_TIMEOUT, module="wsocket", ignore_sigint=False):
        stderr_path = folder / ("wsocket-stderr-%d.txt" % len(started))
        proc = spawn(args, cwd, stderr_path, module, ignore_sigint)
        server = None
        try:
            banner = read_banner(proc, timeout)
            match = _BANNER.match(banner)
            assert match, "unexpected banner %r" % banner
            url, scheme, host, port = match.groups()
            server = ServerProcess(proc, stderr_path, url, scheme, host, int(port))
        finally:
            if server is None:
                proc.kill()
                proc.wait(5)
                proc.stdout.close()
        started.append(server)
        return server

    return start, started


@pytest.fixture
def wsocket_process(tmp_path):
    """Factory: ``wsocket_process("tests.apps:echo", "--port", "0")`` -> ServerProcess.

    Every process still running at teardown gets SIGTERM, then a kill if it
    does not end within STOP_TIMEOUT.
    """
    start, started = _process_starter(tmp_path)
    yield start
    for server in started:
        server.terminate()


@pytest.fixture(scope="module")
def wsocket_process_module(tmp_path_factory):
    """Like ``wsocket_process``, but the processes live as long as the test module."""
    start, started = _process_starter(tmp_path_factory.mktemp("wsocket-processes"))
    yield start
    for server in started:
        server.terminate()


@pytest.fixture
def echo_process(wsocket_process):
    """``python -m wsocket tests.apps:echo --port 0``."""
    return wsocket_process("tests.apps:echo", "--port", "0")


def _in_process_servers():
    """Yields a ``start(app, host, **options)`` factory; stops its servers afterwards."""
    servers = []

    def start(app=None, host="127.0.0.1", **options):
        server = make_server(host, 0, app, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=5)


@pytest.fixture
def serve():
    """Factory: ``serve(app, **options)`` -> a started in-process server on 127.0.0.1.

    Uses ``make_server(host, 0, app, ...).start()``; every server is stopped
    at teardown.
    """
    yield from _in_process_servers()


@pytest.fixture(scope="module")
def serve_module():
    """Like ``serve``, but the servers live as long as the test module.

    Stopping a server takes up to 0.5 s (its accept loop's poll interval),
    so modules that need many servers share them.
    """
    yield from _in_process_servers()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 and localhost, written to files.

    ``context`` trusts it; ``threaded_peer_context`` too, for websockets'
    sync client (its sockets take turns: see tests/tlspeers.py).
    """
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile, combined = folder / "cert.pem", folder / "key.pem", folder / "both.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.private_key_and_cert_chain_pem.write_to_path(str(combined))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    # For websockets' sync client, which reads and writes from two threads.
    threaded_peer_context = taking_turns(ssl.create_default_context())
    ca.configure_trust(threaded_peer_context)
    return {"certfile": str(certfile), "keyfile": str(keyfile), "combined": str(combined),
            "context": client_context, "threaded_peer_context": threaded_peer_context}
