"""The framework examples in examples/, each started as its docstring says.

Every example serves a page at / and a WebSocket echo at /ws. The test
echoes text and binary, closes, checks that nothing followed the close
frame on the wire, fetches the page, and checks the server logged no error.
"""

import contextlib
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.netutil import ROOT
from tests.serverproc import assert_clean_end, python, recording_socket, start_server

EXAMPLES = ROOT / "examples"
TIMEOUT = 20.0

# (name, command line as the example's docstring gives it, folder it runs in, page text)
RUNS = [
    ("wsgi", python("wsgi_echo.py", "{port}"), EXAMPLES, b"<title>wsocket echo</title>"),
    ("flask", python("-m", "flask", "--app", "flask_echo", "run", "--host", "127.0.0.1",
                     "--port", "{port}"), EXAMPLES, b"Flask here"),
    ("flask-on-wsocket", python("-m", "wsocket", "flask_echo:app", "--host", "127.0.0.1",
                                "--port", "{port}"), EXAMPLES, b"Flask here"),
    ("django", python("-m", "gunicorn", "-k", "gthread", "--threads", "100",
                      "-b", "127.0.0.1:{port}", "echosite.wsgi"),
     EXAMPLES / "django_echo", b"Django here"),
    ("django-on-wsocket", python("-m", "wsocket", "echosite.wsgi:application",
                                 "--host", "127.0.0.1", "--port", "{port}"),
     EXAMPLES / "django_echo", b"Django here"),
    ("bottle", python("bottle_echo.py", "{port}"), EXAMPLES, b"Bottle here"),
    ("pyramid", python("-m", "gunicorn", "-k", "gevent", "-b", "127.0.0.1:{port}",
                       "pyramid_echo:app"), EXAMPLES, b"Pyramid here"),
    ("gevent", python("gevent_echo.py", "{port}"), EXAMPLES, b"<title>wsocket echo</title>"),
    ("eventlet", python("eventlet_echo.py", "{port}"), EXAMPLES, b"<title>wsocket echo</title>"),
]


@pytest.fixture(params=RUNS, ids=[run[0] for run in RUNS])
def example(request, tmp_path):
    name, command, folder, page = request.param
    server = start_server(name, command, tmp_path / "stderr.txt", cwd=folder,
                          env={"HOME": str(tmp_path)})
    server.page = page
    yield server
    server.stop()


def test_example_echoes_and_serves_its_page(example):
    with contextlib.ExitStack() as stack:
        sock = recording_socket(example.port)
        connection = stack.enter_context(connect(
            example.ws_url + "/ws", sock=sock, open_timeout=TIMEOUT, close_timeout=TIMEOUT))
        connection.send("hello from the test")
        assert connection.recv(timeout=TIMEOUT) == "hello from the test"
        connection.send(b"\x00\x01binary")
        assert connection.recv(timeout=TIMEOUT) == b"\x00\x01binary"
        assert_clean_end(connection, sock)
        assert connection.close_code == 1000
    with urllib.request.urlopen(example.url + "/", timeout=TIMEOUT) as response:
        assert response.status == 200
        assert example.page in response.read()
    example.assert_no_errors()


def test_the_eventlet_example_starts_quietly(tmp_path):
    """No deprecation warning on start: docs/deploying.md says it once, the example filters it."""
    with start_server("eventlet", python("eventlet_echo.py", "{port}"), tmp_path / "stderr.txt",
                      cwd=EXAMPLES, env={"HOME": str(tmp_path)}) as server:
        with urllib.request.urlopen(server.url + "/", timeout=TIMEOUT) as response:
            assert response.status == 200
        stderr = server.stderr()
    assert "Warning" not in stderr and "deprecated" not in stderr, stderr
    assert "wsgi starting up on http://127.0.0.1:%d" % server.port in stderr, stderr


def _readme_block(after):
    """The first ```python block of README.md after the line ``after``."""
    readme = (ROOT / "README.md").read_text()
    return readme.split(after, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("server", ["wsocket", "flask"])
def test_readmes_flask_example_runs_as_written(tmp_path, server):
    (tmp_path / "flaskapp.py").write_text(_readme_block("With Flask ("))
    commands = {
        "wsocket": python("-m", "wsocket", "flaskapp:app", "--port", "{port}"),
        "flask": python("-m", "flask", "--app", "flaskapp", "run", "--port", "{port}"),
    }
    with start_server(server, commands[server], tmp_path / "stderr.txt", cwd=tmp_path,
                      env={"HOME": str(tmp_path)}) as running:
        with contextlib.ExitStack() as stack:
            sock = recording_socket(running.port)
            connection = stack.enter_context(connect(
                running.ws_url + "/ws", sock=sock, open_timeout=TIMEOUT,
                close_timeout=TIMEOUT))
            connection.send("hello flask")
            assert connection.recv(timeout=TIMEOUT) == "hello flask"
            assert_clean_end(connection, sock)
            assert connection.close_code == 1000
        running.stop()
    stderr = running.stderr()
    assert "TypeError" not in stderr and "did not return a valid response" not in stderr, stderr
    running.assert_no_errors()
