"""The package declares exactly the Python versions CI tests it on.

.ci/run tests 3.11 with the whole suite (README's command) and the others
with .ci/versions.sh; pyproject.toml's classifiers and requires-python must
name those and no more.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_VERSION = "3.11"  # .ci/run's python3


def _pyproject():
    return (ROOT / "pyproject.toml").read_text()


def _ci_versions():
    script = (ROOT / ".ci" / "versions.sh").read_text()
    match = re.search(r"else VERSIONS=\(([0-9. ]+)\); fi", script)
    assert match is not None, "no default VERSIONS=(...) in .ci/versions.sh"
    return match.group(1).split()


def _key(version):
    return tuple(int(part) for part in version.split("."))


def test_classifiers_name_the_tested_versions():
    declared = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', _pyproject())
    tested = sorted(_ci_versions() + [MAIN_VERSION], key=_key)
    assert tested == ["3.9", "3.10", "3.11", "3.12", "3.13"]
    assert declared == tested


def test_requires_python_is_the_tested_range():
    assert re.findall(r'^requires-python = "(.*)"$', _pyproject(), re.MULTILINE) == [
        ">=3.9,<3.14"]


def test_this_python_is_a_declared_one():
    assert "%d.%d" % sys.version_info[:2] in ["3.9", "3.10", "3.11", "3.12", "3.13"]
