"""Real WSGI servers as subprocesses, and checks on what they put on the wire.

``start_server(command, ...)`` runs a server command line on a free port of
127.0.0.1 and waits until it accepts connections; its stderr goes to a file
the tests read (``stderr()``) to make sure no error was logged.
``recording_socket()`` gives the ``websockets`` client a socket that keeps
every byte it receives, so that a test can check, after the close frame,
that the server sent nothing else before its FIN.
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.netutil import ROOT, TIMEOUT

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# What a server or wsocket writes when something went wrong.
_ERROR_SIGNS = re.compile(r"Traceback|\berror\b|\bcritical\b|exception in", re.IGNORECASE)


def stop_process(proc, timeout=STOP_TIMEOUT):
    """SIGTERM and wait; kill on timeout. Returns the exit status.

    A process started in a session of its own (``start_new_session=True``)
    leads a process group: whatever of that group outlives it (a gunicorn
    worker whose master was killed, say) is killed too.
    """
    try:
        leads_a_group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # already ended and reaped
        leads_a_group = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if leads_a_group:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # nothing left of the group
    return proc.returncode


def processes_tagged(name, value):
    """Pids of the live processes whose environment has ``name=value``.

    Every process a test session starts inherits the session's tag
    (conftest.py sets it), so what is still running at the end was leaked.
    """
    wanted = ("%s=%s" % (name, value)).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as environ:
                if wanted in environ.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return pids


def command_line(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A server subprocess listening on 127.0.0.1:``port``."""

    def __init__(self, name, proc, port, stderr_path):
        self.name = name
        self.proc = proc
        self.port = port
        self.host = "127.0.0.1"
        self.stderr_path = stderr_path
        self.url = "http://127.0.0.1:%d" % port
        self.ws_url = "ws://127.0.0.1:%d" % port

    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def assert_no_errors(self):
        """The server's stderr shows no traceback and no error line."""
        text = self.stderr()
        lines = [line for line in text.splitlines() if _ERROR_SIGNS.search(line)]
        assert not lines, "%s logged errors:\n%s" % (self.name, text[-6000:])

    def stop(self, timeout=STOP_TIMEOUT):
        status = stop_process(self.proc, timeout)
        # The server ran in a session of its own: a child it left behind (a
        # uWSGI worker that hung) goes with its process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return status

    # ``with start_server(...) as server:`` stops it however the block ends;
    # fixtures that start several put them on one contextlib.ExitStack.
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_server(name, command, stderr_path, port=None, cwd=ROOT, env=None,
                 timeout=START_TIMEOUT):
    """Run ``command`` (``{port}`` in it is replaced) and wait until the port accepts."""
    port = port or free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    environment = dict(os.environ, PYTHONUNBUFFERED="1", WSOCKET_TEST_SERVER="1")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    environment.update(env or {})
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(command, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                stdout=stderr, stderr=stderr, env=environment,
                                start_new_session=True)
    server = Server(name, proc, port, stderr_path)
    try:
        _wait_until_listening(server, timeout)
    except BaseException:
        server.stop()  # and whatever it started, even when it exited itself
        raise
    return server


def _wait_until_listening(server, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening:\n%s"
                               % (server.name, server.proc.returncode, server.stderr()[-4000:]))
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("%s did not listen on %d within %.0f s:\n%s"
                                   % (server.name, server.port, timeout,
                                      server.stderr()[-4000:]))
            time.sleep(0.05)


def python(*args):
    """A command line running this interpreter."""
    return [sys.executable, *args]


# The uwsgi command pip installed next to this interpreter (in a virtualenv
# that is not activated it is not on PATH).
UWSGI = str(Path(sys.executable).with_name("uwsgi")) if Path(
    sys.executable).with_name("uwsgi").exists() else (shutil.which("uwsgi") or "uwsgi")


def uwsgi(*args, module="tests.matrix_app:app"):
    """A uWSGI command line serving ``module`` with this interpreter's packages.

    --home gives uWSGI's embedded Python this virtualenv; --die-on-term makes
    SIGTERM stop it (its default is to reload); --disable-logging keeps the
    request log out of the stderr the tests read for errors.
    """
    return [UWSGI, *args, "--home", sys.prefix, "--module", module, "--pythonpath", str(ROOT),
            "--die-on-term", "--disable-logging"]


# -- the wire ---------------------------------------------------------------------------

class RecordingSocket(socket.socket):
    """A client socket that keeps every byte it receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = bytearray()
        self.saw_eof = False

    def recv(self, bufsize, flags=0):
        data = super().recv(bufsize, flags)
        self.received += data
        if not data:
            self.saw_eof = True
        return data


def recording_socket(port, host="127.0.0.1"):
    sock = RecordingSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    sock.settimeout(None)
    return sock


def after_close_frame(data):
    """What the server sent after its close frame (the 101 response head first)."""
    data = bytes(data)
    assert data.startswith(b"HTTP/1.1 101 "), data[:200]
    position = data.index(b"\r\n\r\n") + 4
    while position < len(data):
        first, second = data[position], data[position + 1]
        assert not second & 0x80, "a server frame is masked"
        length = second & 0x7F
        position += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[position:position + 2])
            position += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[position:position + 8])
            position += 8
        position += length
        if first & 0x0F == 0x8:
            assert position <= len(data), "the close frame is cut short"
            return data[position:]
    raise AssertionError("no close frame in the %d bytes received" % len(data))


def assert_clean_end(connection, sock, timeout=TIMEOUT):
    """After the closing handshake: the server's FIN came, and nothing after the close frame."""
    connection.close()
    connection.recv_events_thread.join(timeout)
    assert not connection.recv_events_thread.is_alive(), "the client still reads"
    assert sock.saw_eof, "the server never ended the TCP connection"
    assert after_close_frame(sock.received) == b""
