"""Benchmarks of wsocket against its peers (not tests): ``python -m bench --help``.

- ``__main__.py``: the runner (interleaved repetitions, medians, the report)
- ``scenarios.py``: what is measured
- ``servers/``: one launcher per server (wsocket, websockets sync and asyncio,
  flask-sock, a minimal raw-socket echo: the ceiling)
- ``loadgen.c``: the load generator, built at run time with ``cc`` into
  ``.build/``; ``loadgen.py`` is the same in pure Python, used without a compiler
- ``runner.py``: processes, CPU pinning, memory and CPU sampling
- ``results/latest.json``, ``latest.md``: the last run
"""
