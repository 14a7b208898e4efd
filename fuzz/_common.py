"""What the fuzz targets share: the source tree, seed inputs, starting libFuzzer.

Each target is a script, ``python fuzz/fuzz_NAME.py [libFuzzer options]
[corpus folders]``. Unless ``-seed_inputs=`` is given, it starts from its
own seed inputs (valid streams and requests), written to a folder of the
system's temporary directory; new inputs go to the first corpus folder given,
if any. A crash leaves the input in ``crash-<sha1>`` (see
``-artifact_prefix=``); run the target with that file to replay it.
"""

import hashlib
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "src")


def use_source_tree():
    """Import wsocket from this checkout, installed or not."""
    if SOURCE not in sys.path:
        sys.path.insert(0, SOURCE)


def _seed_files(name, seeds):
    folder = os.path.join(tempfile.gettempdir(), "wsocket-fuzz-seeds", name)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for seed in seeds:
        path = os.path.join(folder, hashlib.sha1(seed).hexdigest())
        if not os.path.exists(path):
            partial = "%s.%d.tmp" % (path, os.getpid())
            with open(partial, "wb") as file:
                file.write(seed)
            os.replace(partial, path)
        paths.append(path)
    return paths


def fuzz(name, test_one_input, seeds):
    """Run libFuzzer on ``test_one_input`` with this process's command line."""
    import atheris

    argv = list(sys.argv)
    if not any(arg.startswith("-seed_inputs=") for arg in argv[1:]):
        argv.append("-seed_inputs=" + ",".join(_seed_files(name, seeds)))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
