"""examples/rooms.py, client.py, auth_token.py, auth_flask.py and test_auth_token.py
(shown on the documentation site), each run as written.

Also checks that every example the site includes is run by a test.
"""

import re
import socket
import subprocess
import sys
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.netutil import ROOT, TIMEOUT
from tests.test_examples_core import example  # noqa: F401 (a fixture)

SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)


def test_rooms_example(example):  # noqa: F811
    server = example("rooms.py")
    options = dict(open_timeout=TIMEOUT, close_timeout=TIMEOUT)
    with connect(server.ws_url + "red", **options) as ada, \
            connect(server.ws_url + "red", **options) as bob, \
            connect(server.ws_url + "blue", **options) as eve:
        assert ada.recv(timeout=TIMEOUT) == "you are in red with 0 other(s)"
        assert bob.recv(timeout=TIMEOUT) == "you are in red with 1 other(s)"
        assert eve.recv(timeout=TIMEOUT) == "you are in blue with 0 other(s)"
        ada.send("hello red")
        assert bob.recv(timeout=TIMEOUT) == "hello red"  # the others in the room
        eve.send(b"\x00blue")
        bob.send("and back")
        assert ada.recv(timeout=TIMEOUT) == "and back"  # not its own, nor blue's
    with connect(server.ws_url, **options) as lobby:
        assert lobby.recv(timeout=TIMEOUT) == "you are in lobby with 0 other(s)"


def test_client_example_against_the_echo_example(example):  # noqa: F811
    server = example("wsgi_echo.py")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client.py"), server.ws_url + "ws",
         "hello", "wörld"],
        capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\nwörld\n"
    assert result.stderr == ""


def test_client_example_says_what_failed():
    # A port bound but not listening: the connection is refused.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = "ws://127.0.0.1:%d/ws" % bound.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "client.py"), url,
                                 "x"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("cannot connect: ") and "refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_example_on_a_page_without_websocket(example):  # noqa: F811
    server = example("routes.py")  # routes, no events: no route, a 404 instead of the 101
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "client.py"),
                             server.ws_url + "nowhere", "x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "the server answered 404 instead of a WebSocket\n"


def test_auth_token_example_as_a_server(example):  # noqa: F811
    """python auth_token.py: the token in the query or as a subprotocol, else 401 before the 101."""
    server = example("auth_token.py")
    options = dict(open_timeout=TIMEOUT, close_timeout=TIMEOUT)
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url + "ws?token=wrong", **options)
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"
    with connect(server.ws_url + "ws", subprotocols=["token.def456"], **options) as bob:
        assert bob.subprotocol == "token.def456"
        assert bob.recv(timeout=TIMEOUT) == "hello bob"
        bob.send("hi")
        assert bob.recv(timeout=TIMEOUT) == "bob: hi"


def test_auth_flask_example_as_a_server(wsocket_process):
    """wsocket auth_flask:app: the session cookie decides before the 101, the origin first."""
    server = wsocket_process("auth_flask:app", "--port", "0", cwd=ROOT / "examples")
    port = server.port
    origin = "http://127.0.0.1:5000"  # the example allows this origin (its flask run's)
    options = dict(open_timeout=TIMEOUT, close_timeout=TIMEOUT, origin=origin)
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url + "ws", **options)
    assert refused.value.response.status_code == 401
    with urllib.request.urlopen("http://127.0.0.1:%d/login" % port, timeout=TIMEOUT) as login:
        cookie = login.headers["Set-Cookie"].split(";")[0]
    with pytest.raises(InvalidStatus) as elsewhere:  # the cookie, from another site's page
        connect(server.ws_url + "ws", **dict(options, origin="https://evil.example"),
                additional_headers={"Cookie": cookie})
    assert elsewhere.value.response.status_code == 403
    with connect(server.ws_url + "ws", additional_headers={"Cookie": cookie},
                 **options) as alice:
        alice.send("hi")
        assert alice.recv(timeout=TIMEOUT) == "alice: hi"
    assert server.terminate() == 0
    assert "Traceback" not in server.stderr(), server.stderr()


def test_the_test_client_example_passes():
    """examples/test_auth_token.py, the testing page's example, run by pytest as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_auth_token.py"],
        cwd=str(ROOT / "examples"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout


def test_every_example_on_the_site_is_run_by_a_test():
    included = set()
    for page in (ROOT / "docs").glob("*.md"):
        included.update(SNIPPET.findall(page.read_text(encoding="utf-8")))
    assert "examples/wsgi_echo.py" in included  # the pattern still finds them
    tests = "".join(path.read_text(encoding="utf-8")
                    for path in (ROOT / "tests").glob("test_examples*.py"))
    for path in sorted(included):
        assert (ROOT / path).is_file(), path
        parts = path.split("/")
        assert parts[0] == "examples", "%s: the site shows files of examples/ only" % path
        # A test names a script (wsgi_echo.py) or its module (flask_echo:app), and a
        # project by its folder (django_echo).
        name = parts[1].rpartition(".py")[0] if len(parts) == 2 else parts[1]
        assert re.search(r"\b%s\b" % re.escape(name), tests), "no test runs " + path
