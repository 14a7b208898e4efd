"""The package is typed (PEP 561): py.typed ships, the C module's stub matches it,
and mypy --strict and ruff stay clean over the whole package."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import wsocket

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(wsocket.__file__).resolve().parent

# Clean under ruff's rule set (pyproject.toml): the whole package, and the test
# files written to it (the rest of tests/ predates the rule set).
RUFF_CLEAN = [
    "src",
    "tests/protocol/test_enums.py", "tests/test_sockets.py", "tests/test_typing.py",
]


def test_py_typed_marker_and_stub_are_package_data():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_speedups.pyi").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    package_data = re.search(r'^wsocket = \[(.*)\]$', pyproject, re.MULTILINE).group(1)
    assert '"py.typed"' in package_data and '"_speedups.pyi"' in package_data


def stub_members():
    """The stub's functions and classes (positional parameters, no self), its constants."""
    tree = ast.parse((PACKAGE / "_speedups.pyi").read_text())
    functions = {node.name: [arg.arg for arg in node.args.posonlyargs]
                 for node in tree.body if isinstance(node, ast.FunctionDef)}
    classes = {node.name: {item.name: [arg.arg for arg in item.args.posonlyargs[1:]]
                           for item in node.body if isinstance(item, ast.FunctionDef)}
               for node in tree.body if isinstance(node, ast.ClassDef)}
    constants = {node.target.id for node in tree.body
                 if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    return functions, classes, constants


def test_the_stub_describes_the_c_module_exactly():
    speedups = pytest.importorskip("wsocket._speedups")
    public = {name for name in dir(speedups) if not name.startswith("_")}
    stub, classes, constants = stub_members()
    assert set(stub) | set(classes) | constants == public
    for name in constants:
        assert isinstance(getattr(speedups, name), int)
    for name, methods in classes.items():
        # the C type's docstring starts with the constructor's signature
        documented = re.match(r"(\w+)\(([^)]*)\)", getattr(speedups, name).__doc__)
        assert documented.group(1) == name
        assert [part.strip() for part in documented.group(2).split(",") if part.strip()] \
            == methods["__init__"]
        with pytest.raises(TypeError):  # positional arguments only (Lock(): none at all)
            getattr(speedups, name)(**{parameter: None
                                       for parameter in methods["__init__"] or ["unexpected"]})
        for method in set(methods) - {"__init__", "__call__"}:
            assert callable(getattr(getattr(speedups, name), method))
    for name, parameters in stub.items():
        # the C docstring starts with the signature: name(arg, ...)
        documented = re.match(r"(\w+)\(([^)]*)\)", getattr(speedups, name).__doc__)
        assert documented.group(1) == name
        assert [part.strip() for part in documented.group(2).split(",")] == parameters
        with pytest.raises(TypeError):  # METH_VARARGS: no keyword arguments
            getattr(speedups, name)(**{parameter: None for parameter in parameters})


def run(command):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict_passes():
    if run([sys.executable, "-m", "mypy", "--version"]).returncode:
        pytest.skip("mypy is not installed (pip install -e '.[lint]')")
    result = run([sys.executable, "-m", "mypy"])  # the files and options of pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_config_leaves_no_module_out():
    # Strict over every file of the package: no override that ignores a module's errors.
    pyproject = (ROOT / "pyproject.toml").read_text()
    mypy_section = re.search(r"^\[tool\.mypy\]\n(.*?)(?=^\[(?!\[?tool\.mypy))", pyproject,
                             re.MULTILINE | re.DOTALL).group(1)
    assert 'files = ["src/wsocket"]' in mypy_section
    assert "strict = true" in mypy_section
    for loosening in ("ignore_errors", "untyped_calls_exclude", "disallow_untyped_defs = false",
                      "ignore_missing_imports", "exclude"):
        assert loosening not in mypy_section


def test_ruff_passes_on_the_package():
    if run([sys.executable, "-m", "ruff", "--version"]).returncode:
        pytest.skip("ruff is not installed (pip install -e '.[lint]')")
    result = run([sys.executable, "-m", "ruff", "check", *RUFF_CLEAN])
    assert result.returncode == 0, result.stdout + result.stderr


# What a user's type checker sees: tests/typecheck/user_code.py reveals these.
REVEALED = {
    "connect": "wsocket.websocket.WebSocket",
    "reconnect": "wsocket.client.reconnect.Reconnecting",
    "either": "wsocket.websocket.WebSocket | wsocket.client.reconnect.Reconnecting",
    "make_server": "wsocket.server.ThreadingWSGIServer",
    "status": "int",
    "headers": "list[tuple[str, str]]",
    # a route keeps its own type through the decorator
    "route": "def (environ: dict[str, Any], start_response: "
             "wsocket._wsgi_types.StartResponse) -> str",
    "close code": "Literal[wsocket.protocol.codes.CloseCode.GOING_AWAY]?",
}


def test_users_see_the_public_api_typed():
    if run([sys.executable, "-m", "mypy", "--version"]).returncode:
        pytest.skip("mypy is not installed (pip install -e '.[lint]')")
    user_code = ROOT / "tests" / "typecheck" / "user_code.py"
    result = run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                  "--show-error-codes", "--no-pretty", "--config-file", "/dev/null",
                  str(user_code)])
    output = result.stdout + result.stderr
    lines = user_code.read_text().splitlines()
    revealed = {}
    for match in re.finditer(r'user_code\.py:(\d+): note: Revealed type is "(.*)"', output):
        label = lines[int(match.group(1)) - 1].rpartition("# ")[2]
        revealed[label] = match.group(2)
    assert revealed == REVEALED, output
    # Nothing but the reveal_type notes: the calls above type-check.
    assert "error:" not in output, output
