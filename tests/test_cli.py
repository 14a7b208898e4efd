"""The command line: ``python -m wsocket [module:app] [options]``."""

import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.netutil import ROOT, TIMEOUT

RUN_TIMEOUT = 20


def run_cli(*args, cwd=ROOT):
    """Run ``python -m wsocket *args`` to its end; (exit status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "wsocket", *args], cwd=str(cwd),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def assert_error(result, *phrases):
    """Exit status 2, nothing served, exactly one line on stderr holding the phrases."""
    status, stdout, stderr = result
    assert status == 2, (status, stdout, stderr)
    assert "serving on" not in stdout
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("wsocket: error: "), stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


# -- mistakes -------------------------------------------------------------------------------

def test_module_not_found():
    line = assert_error(run_cli("no_such_module_xyz:app", "--port", "0"),
                        "no_such_module_xyz")
    assert line == ("wsocket: error: cannot import module 'no_such_module_xyz' (looked in %s)"
                    % ROOT)


def test_module_that_raises_on_import(tmp_path):
    (tmp_path / "exploding.py").write_text("raise ValueError('bad configuration')\n")
    assert_error(run_cli("exploding:app", "--port", "0", cwd=tmp_path),
                 "exploding", "ValueError", "bad configuration")


def test_module_whose_own_import_fails(tmp_path):
    (tmp_path / "needy.py").write_text("import not_installed_dependency_xyz\napp = None\n")
    assert_error(run_cli("needy:app", "--port", "0", cwd=tmp_path),
                 "needy", "not_installed_dependency_xyz")


def test_module_with_a_syntax_error(tmp_path):
    (tmp_path / "typo.py").write_text("def app(:\n")
    assert_error(run_cli("typo:app", "--port", "0", cwd=tmp_path), "typo", "SyntaxError")


def test_attribute_missing():
    line = assert_error(run_cli("tests.apps:nope", "--port", "0"))
    assert line == "wsocket: error: module 'tests.apps' has no attribute 'nope'"


def test_default_attribute_is_app(tmp_path):
    (tmp_path / "noapp.py").write_text("application = None\n")
    assert_error(run_cli("noapp", "--port", "0", cwd=tmp_path), "'noapp'", "'app'")


def test_app_not_callable():
    assert_error(run_cli("tests.apps:not_callable", "--port", "0"),
                 "tests.apps:not_callable", "not a WSGI application", "int")


def test_attribute_not_a_name():
    assert_error(run_cli("tests.apps:echo-app", "--port", "0"), "echo-app")


def test_factory_raising():
    line = assert_error(run_cli("tests.apps:broken_factory()", "--port", "0"))
    assert line == "wsocket: error: calling broken_factory() failed: RuntimeError: factory broke"


def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_error(run_cli("tests.apps:echo", "--port", str(port)),
                     "cannot serve on 127.0.0.1 port %d" % port, "in use")


@pytest.mark.parametrize("value, phrase", [
    ("abc", "expected a port number, not 'abc'"),
    ("70000", "port must be from 0 to 65535"),
    ("-1", "port must be from 0 to 65535"),
])
def test_bad_port_value(value, phrase):
    assert_error(run_cli("tests.apps:echo", "--port", value), "--port", phrase)


@pytest.mark.parametrize("option, value", [
    ("--max-message-size", "lots"),
    ("--ping-interval", "-3"),
    ("--close-timeout", "soon"),
])
def test_bad_limit_values(option, value):
    assert_error(run_cli("tests.apps:echo", "--port", "0", option, value), option)


def test_unknown_option():
    assert_error(run_cli("--port", "0", "--no-such-option"), "--no-such-option")


def test_keyfile_without_certfile(tmp_path):
    keyfile = tmp_path / "key.pem"
    keyfile.write_text("not used\n")
    line = assert_error(run_cli("tests.apps:echo", "--port", "0", "--keyfile", str(keyfile)))
    assert line == "wsocket: error: --keyfile needs --certfile"


def test_missing_certificate_file(tmp_path):
    missing = tmp_path / "nowhere.pem"
    line = assert_error(run_cli("tests.apps:echo", "--port", "0", "--certfile", str(missing)))
    assert line == "wsocket: error: no such file: %s" % missing


def test_missing_key_file(tmp_path):
    certfile = tmp_path / "cert.pem"
    certfile.write_text("whatever\n")
    missing = tmp_path / "nokey.pem"
    line = assert_error(run_cli("tests.apps:echo", "--port", "0", "--certfile", str(certfile),
                                "--keyfile", str(missing)))
    assert line == "wsocket: error: no such file: %s" % missing


def test_unreadable_certificate(tmp_path):
    certfile = tmp_path / "garbage.pem"
    certfile.write_text("this is not a certificate\n")
    line = assert_error(run_cli("tests.apps:echo", "--port", "0", "--certfile", str(certfile)))
    assert line.startswith("wsocket: error: cannot use the certificate %s: " % certfile)
    assert "port" not in line


def test_options_on_an_app_that_is_already_wsocketapp():
    assert_error(run_cli("tests.apps:echo_chat", "--port", "0", "--max-message-size", "10"),
                 "max_message_size", "WSocketApp")


# -- what works ------------------------------------------------------------------------------

def test_factory_is_called(wsocket_process):
    server = wsocket_process("tests.apps:create_app()", "--port", "0")
    with connect(server.ws_url, open_timeout=TIMEOUT) as websocket:
        websocket.send("made by a factory")
        assert websocket.recv(timeout=TIMEOUT) == "made by a factory"
    with urllib.request.urlopen(server.url + "x", timeout=TIMEOUT) as answer:
        assert answer.read() == b"plain HTTP GET /x"


def test_demo_without_an_app(wsocket_process):
    server = wsocket_process("--port", "0")
    with urllib.request.urlopen(server.url, timeout=TIMEOUT) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/html")
        page = answer.read().decode("utf-8")
    assert "wsocket demo" in page
    with connect(server.ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "you said: hi"
        websocket.send(b"\x00\x01")
        assert websocket.recv(timeout=TIMEOUT) == b"\x00\x01"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server.url + "nothing-here", timeout=TIMEOUT)
    assert missing.value.code == 404


def test_subprotocol_app_from_the_command_line(wsocket_process):
    server = wsocket_process("tests.apps:echo_chat", "--port", "0")
    with connect(server.ws_url, subprotocols=["chat", "superchat"],
                 open_timeout=TIMEOUT) as websocket:
        assert websocket.subprotocol == "superchat"


def test_no_compression_option(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0", "--no-compression")
    with connect(server.ws_url, open_timeout=TIMEOUT) as websocket:
        assert "Sec-WebSocket-Extensions" not in websocket.response.headers
        websocket.send("plain")
        assert websocket.recv(timeout=TIMEOUT) == "plain"


def test_compression_level_option(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0", "--compression-level", "1")
    with connect(server.ws_url, open_timeout=TIMEOUT) as websocket:
        assert websocket.response.headers["Sec-WebSocket-Extensions"].startswith(
            "permessage-deflate")
        websocket.send("fast " * 1000)
        assert websocket.recv(timeout=TIMEOUT) == "fast " * 1000


@pytest.mark.parametrize("value, message", [
    ("0", "argument --compression-level: must be from 1 (fastest) to 9 (smallest output)"),
    ("fast", "argument --compression-level: expected a whole number, not 'fast'"),
])
def test_bad_compression_level(value, message):
    assert_error(run_cli("tests.apps:echo", "--compression-level", value), message)


def test_max_message_size_option(wsocket_process):
    from websockets.exceptions import ConnectionClosed
    server = wsocket_process("tests.apps:echo", "--port", "0", "--max-message-size", "1000")
    with connect(server.ws_url, compression=None, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send(b"x" * 1000)
        assert websocket.recv(timeout=TIMEOUT) == b"x" * 1000
        websocket.send(b"x" * 1001)
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_max_fragments_option(wsocket_process):
    from websockets.exceptions import ConnectionClosed
    # websockets sends each piece as a frame, then an empty final one: 3 pieces, 4 frames.
    server = wsocket_process("tests.apps:echo", "--port", "0", "--max-fragments", "4")
    with connect(server.ws_url, compression=None, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as websocket:
        websocket.send(["a", "b", "c"])
        assert websocket.recv(timeout=TIMEOUT) == "abc"
        with pytest.raises(ConnectionClosed) as closed:
            # The server may close before the client has sent the last fragment.
            websocket.send(["a", "b", "c", "d"])
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1009, "message in more than 4 fragments (the limit)")


def test_access_log_goes_to_stderr(wsocket_process):
    server = wsocket_process("tests.apps:echo", "--port", "0")
    with urllib.request.urlopen(server.url + "logged?q=1", timeout=TIMEOUT) as answer:
        answer.read()
    assert server.terminate() == 0
    assert '"GET /logged?q=1 HTTP/1.1" 200' in server.stderr()


def test_help_exits_0():
    status, stdout, stderr = run_cli("--help")
    assert status == 0
    assert stdout.startswith("usage: wsocket")
    assert "--certfile" in stdout and "--port" in stdout


def test_version():
    from wsocket import __version__
    status, stdout, stderr = run_cli("--version")
    assert (status, stdout, stderr) == (0, "wsocket %s\n" % __version__, "")


def test_help_lists_the_subcommands_and_the_app_forms():
    status, stdout, _ = run_cli("--help")
    assert status == 0
    assert "wsocket connect URL" in stdout
    for form in ("mymodule:app", "mymodule:create_app()", "path/to/app.py"):
        assert form in stdout, form
    # every option says what it does
    assert "--log-level LEVEL     what goes to stderr" in stdout
    assert "--version" in stdout


# -- file paths and the forms of APP -----------------------------------------------------

HELLO_APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [__name__.encode() + b" says hello"]
'''


def _get(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()


def test_a_file_path(wsocket_process, tmp_path):
    (tmp_path / "hello.py").write_text(HELLO_APP)
    server = wsocket_process("hello.py", "--port", "0", cwd=tmp_path)
    assert _get(server.url) == b"hello says hello"


def test_a_file_path_in_a_folder_with_an_attribute(wsocket_process, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    # the file's own folder is on sys.path: its sibling imports work
    (folder / "greeting.py").write_text("WORDS = b' from a folder'\n")
    (folder / "web.py").write_text(
        "import greeting\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'hello' + greeting.WORDS]\n")
    server = wsocket_process("site/web.py:application", "--port", "0", cwd=tmp_path)
    assert _get(server.url) == b"hello from a folder"


def test_a_module_name_alone_means_its_app(wsocket_process, tmp_path):
    (tmp_path / "hello.py").write_text(HELLO_APP)
    server = wsocket_process("hello", "--port", "0", cwd=tmp_path)
    assert _get(server.url) == b"hello says hello"


def test_a_missing_file(tmp_path):
    line = assert_error(run_cli("mymodule.py:app", "--port", "0", cwd=tmp_path))
    assert line == ("wsocket: error: app 'mymodule.py:app': no such file %s; serve a module "
                    "as mymodule:app or a file as path/to/mymodule.py:app"
                    % (tmp_path / "mymodule.py"))


def test_a_path_that_is_not_python(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert_error(run_cli("./notes.txt", "--port", "0", cwd=tmp_path),
                 "notes.txt is not a .py file")


def test_a_file_named_like_an_imported_module(tmp_path):
    (tmp_path / "lib").mkdir()  # not in the current directory, which python -m puts first
    (tmp_path / "lib" / "socket.py").write_text(HELLO_APP)
    assert_error(run_cli("lib/socket.py", "--port", "0", cwd=tmp_path),
                 "module 'socket', which is already imported; rename the file")


# -- a module that serves by itself on import ---------------------------------------------

def test_a_module_that_runs_a_server_on_import_is_refused(tmp_path):
    (tmp_path / "eager.py").write_text(
        "from wsocket import run\n" + HELLO_APP + "run(app, port=0)\n")
    status, stdout, stderr = run_cli("eager:app", "--port", "0", cwd=tmp_path)
    line = assert_error((status, stdout, stderr), "eager starts a server while it is imported",
                        "if __name__ == \"__main__\":", "'wsocket eager:app' serves the app once")
    assert stdout == ""  # not one banner: no server started at all


def test_the_readme_example_is_guarded(wsocket_process, tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Use it with your app\n\n```python\n", 1)[1].split("```", 1)[0]
    assert 'if __name__ == "__main__":' in example
    (tmp_path / "mymodule.py").write_text(example)
    server = wsocket_process("mymodule:app", "--port", "0", cwd=tmp_path)
    assert _get(server.url) == b"hello"
    server.terminate()
    assert server.stderr().count("serving on") == 0  # the banner is on stdout, once


# -- callables that cannot be WSGI applications -------------------------------------------

def test_a_view_function_is_refused(tmp_path):
    (tmp_path / "views.py").write_text(
        HELLO_APP + "def index():\n    return 'hello'\n")
    assert_error(run_cli("views:index", "--port", "0", cwd=tmp_path),
                 "views:index is not a WSGI application: it takes (), a WSGI application "
                 "takes (environ, start_response)")


def test_a_view_taking_one_argument_points_at_the_app(tmp_path):
    (tmp_path / "views.py").write_text(
        HELLO_APP + "def show(name):\n    return name\n")
    assert_error(run_cli("views:show", "--port", "0", cwd=tmp_path),
                 "it takes (name)", "did you mean views:app?")


def test_a_factory_without_parentheses_is_refused(tmp_path):
    (tmp_path / "factory.py").write_text(
        "def create_app():\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [])\n"
        "        return [b'made']\n"
        "    return app\n")
    assert_error(run_cli("factory:create_app", "--port", "0", cwd=tmp_path),
                 "factory:create_app is not a WSGI application: it takes ()",
                 "if create_app() returns the app, write factory:create_app()")


def test_wsgi_callables_of_every_shape_are_accepted(wsocket_process, tmp_path):
    (tmp_path / "shapes.py").write_text(
        "import functools\n"
        "class App:\n"
        "    def __call__(self, environ, start_response, *rest):\n"
        "        start_response('200 OK', [])\n"
        "        return [b'instance']\n"
        "instance = App()\n"
        "def general(*args, **kwargs):\n"
        "    args[1]('200 OK', [])\n"
        "    return [b'general']\n"
        "def configured(prefix, environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [prefix]\n"
        "partial = functools.partial(configured, b'partial')\n")
    for name in ("instance", "general", "partial"):
        server = wsocket_process("shapes:" + name, "--port", "0", cwd=tmp_path)
        assert _get(server.url) == name.encode()
        server.terminate()
