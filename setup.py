"""Builds the optional C accelerator; everything else is in pyproject.toml.

``optional=True``: without a compiler the build goes on and wsocket runs on
its pure Python path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wsocket._speedups", ["src/wsocket/_speedups.c"], optional=True)])
