"""README's test command, ./test.sh, and CI's use of it.

The command itself runs in CI (.ci/run calls it on a fresh clone); these
tests check what a run cannot show: it stops before the tests with the exact
command to run when it may not install Debian packages, README names what
it installs, and no test installs anything.
"""

import os
import re
import subprocess

from tests.netutil import ROOT


def _debian_packages():
    script = (ROOT / "test.sh").read_text()
    block = re.search(r"^DEBIAN_PACKAGES=\(\n(.*?)^\)", script, re.MULTILINE | re.DOTALL)
    assert block is not None
    return [word for line in block.group(1).splitlines()
            for word in line.split("#", 1)[0].split()]


def test_readme_and_ci_run_the_same_command():
    readme = (ROOT / "README.md").read_text()
    assert "Run the tests:\n\n```sh\n./test.sh\n```" in readme
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#")]
    assert "./test.sh" in ci


def test_readme_names_every_debian_package():
    readme = (ROOT / "README.md").read_text()
    packages = _debian_packages()
    assert {"chromium", "nginx", "redis-server", "tinyproxy", "microsocks"} <= set(packages)
    for package in packages:
        assert package in readme, package


def test_without_root_or_sudo_it_stops_with_the_command_to_run(tmp_path):
    """Nothing installed, no root, no sudo: the exact apt-get line, and no test runs."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in [("dpkg-query", "exit 1"),  # nothing is installed
                       ("id", "echo 1000"),  # not root
                       ("sudo", "exit 1"),  # no sudo without a password
                       ("apt-get", "echo apt-get was run >&2; exit 99")]:
        (fake / name).write_text("#!/bin/sh\n%s\n" % body)
        (fake / name).chmod(0o755)
    done = subprocess.run(["bash", str(ROOT / "test.sh")], cwd=str(tmp_path),
                          env=dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"])),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert "apt-get was run" not in done.stderr
    assert done.stdout == ""  # not a step further: no autobahn, no pip, no pytest
    # (with Debian's own python3, python3-venv and python3-dev follow the list)
    packages = " ".join(_debian_packages())
    assert "./test.sh: these Debian packages are missing: %s" % packages in done.stderr
    assert "    sudo apt-get update && sudo apt-get install -y %s" % packages in done.stderr


def test_no_test_installs_anything():
    for path in (ROOT / "tests").glob("**/*.py"):
        text = path.read_text()
        if path.name == "test_test_command.py":
            continue
        # a test may name install.sh in a message, never run it
        assert not re.search(r"[\"']install\.sh[\"']|[\"']bash[\"'].*install\.sh", text), path
        # (pip install --target into a test's tmp_path builds, it installs nothing)
        assert not re.search(r"apt-get install|pyenv install", text), path
