"""The optional C accelerator and the pure Python path must agree; CI runs both.

The machine CI runs on has a C compiler, so the accelerator must have been
built there; the pure Python path is exercised by running the framing and
WebSocket tests again with WSOCKET_NO_SPEEDUPS=1.
"""

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wsocket.protocol import frames

ROOT = Path(__file__).resolve().parent.parent


def reference_mask(data, mask):
    return bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


def test_accelerator_is_built_and_used():
    assert frames.SPEEDUPS, "wsocket._speedups was not built: is a C compiler installed?"
    assert frames.apply_mask is not frames._apply_mask_python
    assert frames.short_frame is not frames._short_frame_python


@pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 125, 65535, 65536, 70001])
def test_both_paths_agree_with_the_rfc(length):
    data = os.urandom(length)
    mask = os.urandom(4)
    expected = reference_mask(data, mask)
    assert frames.apply_mask(data, mask) == expected
    assert frames._apply_mask_python(data, mask) == expected
    assert frames.apply_mask(bytearray(data), mask) == expected
    assert frames.apply_mask(memoryview(data), mask) == expected


def test_accelerator_rejects_a_bad_mask():
    with pytest.raises(ValueError, match="mask must be 4 bytes long, not 3"):
        frames.apply_mask(b"data", b"abc")


@pytest.mark.parametrize("path", ["c", "python"])
def test_nowait_socket_calls_agree_on_every_outcome(path):
    from wsocket import _sockets
    send = _sockets.send_nowait_in_loop if path == "c" else _sockets._send_nowait_python
    recv = _sockets.recv_nowait_in_loop if path == "c" else _sockets._recv_nowait_python
    if path == "c":
        assert send is not _sockets._send_nowait_python  # the accelerator's own
    ours, theirs = socket.socketpair()
    try:
        assert recv(ours, 100) is None  # nothing yet: no exception, no wait
        theirs.sendall(b"hello")
        assert recv(ours, 3) == b"hel"
        assert recv(ours, 100) == b"lo"
        assert send(ours, memoryview(b"back")) == 4
        assert theirs.recv(100) == b"back"
        ours.setblocking(False)
        total = 0
        while True:  # the peer reads nothing: the buffers fill, then 0, never an error
            sent = send(ours, b"x" * 65536)
            if sent == 0:
                break
            total += sent
        assert total > 0
        theirs.close()
        with pytest.raises(OSError):  # the peer is gone (EPIPE or ECONNRESET)
            for _ in range(100):
                send(ours, b"x" * 65536)
    finally:
        ours.close()
        theirs.close()
    with pytest.raises(OSError) as closed:
        recv(ours, 10)
    assert closed.value.errno == errno.EBADF
    with pytest.raises(OSError) as closed:
        send(ours, b"x")
    assert closed.value.errno == errno.EBADF


def test_nowait_recv_gives_empty_bytes_at_the_end():
    from wsocket import _sockets
    for recv in (_sockets.recv_nowait_in_loop, _sockets._recv_nowait_python):
        ours, theirs = socket.socketpair()
        theirs.close()
        assert recv(ours, 10) == b""
        ours.close()


@pytest.mark.timeout(300)
def test_pure_python_path_passes_the_protocol_and_websocket_tests():
    environment = dict(os.environ, WSOCKET_NO_SPEEDUPS="1")
    check = subprocess.run(
        [sys.executable, "-c", "from wsocket.protocol import frames; print(frames.SPEEDUPS)"],
        env=environment, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "False"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/protocol/test_frames.py", "tests/protocol/test_connection_framing.py",
         "tests/protocol/test_connection_limits.py", "tests/test_websocket.py",
         # the event app's turn and the WSGI loop's receive() without the C paths
         "tests/test_events.py"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]


def _compile_command(output):
    """gcc on _speedups.c against this Python's headers, every warning an error."""
    import sysconfig
    return ["gcc", "-c", "-o", str(output), "-Wall", "-Wextra", "-Wno-unused-parameter",
            "-Wno-missing-field-initializers", "-Werror", "-O1",
            "-I" + sysconfig.get_paths()["include"], "-fPIC",
            str(ROOT / "src" / "wsocket" / "_speedups.c")]


def test_the_c_source_compiles_cleanly_on_this_python(tmp_path):
    """No warning, deprecated APIs included: .ci/versions.sh runs this on every CPython
    CI tests, so an API deprecated on the way to removal shows up before it breaks."""
    result = subprocess.run(_compile_command(tmp_path / "speedups.o"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(300)
def test_without_a_compiler_the_package_installs_on_pure_python(tmp_path):
    """setup.py's optional=True: a failed build of the accelerator is not a failed install."""
    broken = tmp_path / "bin"
    broken.mkdir()
    for name in ("gcc", "cc", "x86_64-linux-gnu-gcc"):
        (broken / name).write_text("#!/bin/sh\necho 'no compiler here' >&2\nexit 1\n")
        (broken / name).chmod(0o755)
    environment = dict(os.environ, CC=str(broken / "gcc"),
                       PATH=str(broken) + os.pathsep + os.environ["PATH"])
    project = tmp_path / "project"  # a copy, so that the build leaves the checkout alone
    shutil.copytree(ROOT / "src", project / "src",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(project)],
        env=environment, capture_output=True, text=True, timeout=280)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not list(target.glob("wsocket/_speedups*.so")), "the accelerator was built anyway"
    check = subprocess.run(
        [sys.executable, "-c", "from wsocket.protocol import frames; print(frames.SPEEDUPS)"],
        env=dict(os.environ, PYTHONPATH=str(target)), cwd=str(tmp_path),
        capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "False", check.stderr


@pytest.mark.parametrize("length", [0, 1, 2, 125])
@pytest.mark.parametrize("first_byte", [0x81, 0x82, 0xC1, 0x00, 0xFF])
def test_short_frame_both_paths_agree_with_serialize_frame(length, first_byte):
    payload = os.urandom(length)
    expected = bytes([first_byte, length]) + payload
    assert frames.short_frame(first_byte, payload) == expected
    assert frames._short_frame_python(first_byte, payload) == expected
    if first_byte in (0x81, 0x82):  # what serialize_frame makes for the same message
        assert frames.serialize_frame(first_byte & 0x0F, payload, True, False, False) == expected


@pytest.mark.parametrize("short_frame", [frames.short_frame, frames._short_frame_python])
def test_short_frame_refuses_what_is_not_short(short_frame):
    with pytest.raises(ValueError, match="at most 125 bytes"):
        short_frame(0x82, b"x" * 126)
    with pytest.raises(ValueError, match="0..255"):
        short_frame(256, b"")
    with pytest.raises(ValueError, match="0..255"):
        short_frame(-1, b"")
