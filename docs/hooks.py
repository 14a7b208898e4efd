"""MkDocs hook: the command lines' --help, generated at build time so it cannot drift.

A page that holds ``<!-- wsocket --help -->`` or ``<!-- wsocket connect --help -->``
gets, in its place, what that command prints for ``--help``.
"""

import contextlib
import io
import os

MARKERS = {
    "<!-- wsocket --help -->": ("wsocket.__main__", "build_parser"),
    "<!-- wsocket connect --help -->": ("wsocket.client.__main__", "main"),
}


def _help_text(module_name, function_name):
    import importlib
    function = getattr(importlib.import_module(module_name), function_name)
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps at this width: the same text everywhere
    try:
        if function_name == "build_parser":
            return function().format_help()
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):
            function(["--help"])
        return output.getvalue()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown, page, config, files):
    for marker, (module_name, function_name) in MARKERS.items():
        if marker in markdown:
            text = _help_text(module_name, function_name).rstrip()
            markdown = markdown.replace(marker, "```text\n%s\n```" % text)
    if PUBLIC_NAMES_MARKER in markdown:
        markdown = markdown.replace(PUBLIC_NAMES_MARKER, _public_names_table(config))
    return markdown


PUBLIC_NAMES_MARKER = "<!-- wsocket public names -->"


def _public_names_table(config):
    """A Markdown table: each name of ``wsocket.__all__``, its summary, a link to its reference."""
    import griffe
    import wsocket
    source = os.path.join(os.path.dirname(config["config_file_path"]), "src")
    package = griffe.load("wsocket", search_paths=[source])
    rows = ["| name | what it is |", "| --- | --- |"]
    for name in wsocket.__all__:
        docstring = package[name].docstring
        summary = docstring.value.strip().split("\n\n")[0].replace("\n", " ") if docstring else ""
        # An autorefs link: it resolves only if a page documents wsocket.<name>.
        rows.append("| [`%s`][wsocket.%s] | %s |" % (name, name, summary.replace("|", "\\|")))
    return "\n".join(rows)
