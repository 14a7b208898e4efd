"""The package declares exactly the Python versions CI tests it on, and bars none.

.ci/run tests 3.11 with the whole suite (README's command) and the others
with .ci/versions.sh; pyproject.toml's classifiers must name those and no
more. requires-python has a lower bound only: an upper bound would make pip
refuse wsocket (or pick an old release) on every newer Python.
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


def test_requires_python_has_a_lower_bound_only():
    assert re.findall(r'^requires-python = "(.*)"$', _pyproject(), re.MULTILINE) == [">=3.9"]


def test_this_python_is_allowed():
    assert sys.version_info >= (3, 9)


def test_readme_names_the_tested_versions():
    readme = (ROOT / "README.md").read_text()
    assert "tested on CPython 3.9, 3.10, 3.11, 3.12 and 3.13" in readme
