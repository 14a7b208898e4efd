"""The command line: ``wsocket [APP] [options]`` or ``python -m wsocket ...``.

Without an app it runs the demo; ``wsocket connect URL`` is the terminal
client of ``wsocket.client``. APP is ``module:app`` (imported from the
current directory, as gunicorn does), ``module`` alone (meaning
``module:app``), ``module:create_app()`` (calls a factory), or a file path:
``app.py`` or ``path/to/app.py:app``. Every mistake gets one clear line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import os
import ssl
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, TypeVar, cast

from . import __version__
from . import server as _server
from .hub import HubError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from ._wsgi_types import WSGIApp

__all__ = ["main", "load_app"]

_USAGE = """wsocket [APP] [options]
       wsocket connect URL [options]"""

_EPILOG = """commands:
  wsocket [APP]            serve APP (the demo page when there is none)
  wsocket connect URL      talk to a WebSocket server from the terminal
                           (wsocket connect --help)

APP is one of:
  mymodule                 the attribute 'app' of mymodule (mymodule:app)
  mymodule:name            another attribute, e.g. mymodule:application
  mymodule:create_app()    call a factory that returns the app
  app.py, path/to/app.py:name
                           a file, imported with its folder first on sys.path

Modules are imported from the current directory. APP must be a WSGI
application: a callable taking (environ, start_response)."""


class CommandLineError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit 2."""


def _split(spec: str) -> tuple[str, str, bool]:
    """``"module:attribute"`` -> (module or path, attribute, whether to call it)."""
    location, sep, attribute = spec.rpartition(":")
    if not sep:
        location, attribute = spec, ""
    if not location:
        raise CommandLineError("app %r: expected module:app, e.g. myapp:app" % spec)
    attribute = attribute or "app"
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    if not attribute.isidentifier():
        raise CommandLineError("app %r: %r is not a Python name" % (spec, attribute))
    return location, attribute, call


def _is_path(location: str) -> bool:
    return location.endswith(".py") or "/" in location or os.sep in location


def _import_file(location: str, spec: str) -> tuple[ModuleType, str]:
    """Import ``path/to/app.py`` as module ``app``, its folder first on sys.path."""
    path = os.path.abspath(location)
    if not os.path.isfile(path):
        name = os.path.basename(location)[:-3] if location.endswith(".py") else location
        raise CommandLineError(
            "app %r: no such file %s; serve a module as %s:app or a file as path/to/%s.py:app"
            % (spec, path, name.replace("/", "."), os.path.basename(name)))
    if not path.endswith(".py"):
        raise CommandLineError("app %r: %s is not a .py file" % (spec, location))
    folder, name = os.path.split(path[:-3])
    if not name.isidentifier():
        raise CommandLineError("app %r: %r is not a Python module name" % (spec, name))
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) != path:
        raise CommandLineError("app %r: the file's name is that of module %r, which is "
                               "already imported; rename the file" % (spec, name))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name), name


def _import(location: str, spec: str) -> tuple[ModuleType, str]:
    """The module named or pointed at by ``location``, and its name."""
    if _is_path(location):
        return _import_file(location, spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(location), location
    except ImportError as error:
        if getattr(error, "name", None) == location:
            raise CommandLineError("cannot import module %r (looked in %s)"
                                   % (location, os.getcwd())) from None
        raise CommandLineError("importing %r failed: %s" % (location, error)) from error


def _check_wsgi_signature(app: Callable[..., object], spec: str, module: ModuleType,
                          attribute: str, call: bool) -> None:
    """Refuse a callable that cannot take (environ, start_response)."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check
    try:
        signature.bind(object(), object())
    except TypeError:
        pass
    else:
        return
    hint = ""
    try:
        signature.bind()
        if not call:
            hint = "; if %s() returns the app, write %s()" % (attribute, spec)
    except TypeError:
        pass
    if not hint and attribute != "app" and callable(getattr(module, "app", None)):
        hint = "; did you mean %s:app?" % spec.rpartition(":")[0]
    raise CommandLineError(
        "%s is not a WSGI application: it takes %s, a WSGI application takes "
        "(environ, start_response)%s" % (spec, signature, hint))


def load_app(spec: str) -> WSGIApp:
    """Import ``module:attribute`` (or ``module:factory()``, or a file) and return the app."""
    location, attribute, call = _split(spec)
    _server._command_line_importing = spec
    try:
        try:
            module, name = _import(location, spec)
        except (CommandLineError, HubError):
            raise  # HubError's own message says it all: "cannot reach Redis at ..."
        except _server.ServerStartedOnImport:
            raise CommandLineError(
                "%s starts a server while it is imported (it calls run() at module level); "
                "put that call under 'if __name__ == \"__main__\":' so that "
                "'wsocket %s' serves the app once" % (location, spec)) from None
        except Exception as error:
            raise CommandLineError("importing %r failed: %s: %s"
                                   % (location, type(error).__name__, error)) from error
        try:
            app = getattr(module, attribute)
        except AttributeError:
            raise CommandLineError("module %r has no attribute %r"
                                   % (name, attribute)) from None
        if call:
            try:
                app = app()
            except HubError:
                raise
            except _server.ServerStartedOnImport:
                raise CommandLineError("%s() starts a server itself; it must return the "
                                       "app instead" % attribute) from None
            except Exception as error:
                raise CommandLineError("calling %s() failed: %s: %s"
                                       % (attribute, type(error).__name__, error)) from error
    finally:
        _server._command_line_importing = None
    if not callable(app):
        raise CommandLineError("%s is not a WSGI application (%s object is not callable)"
                               % (spec, type(app).__name__))
    _check_wsgi_signature(app, spec, module, attribute, call)
    # Callable, and takes two arguments: as far as can be checked, a WSGI app.
    return cast("WSGIApp", app)


_Number = TypeVar("_Number", int, float)


def _number(convert: Callable[[str], _Number], expected: str,
            valid: Callable[[_Number], bool], invalid: str,
            allow_none: bool = False) -> Callable[[str], _Number | None]:
    """An argparse type: ``convert`` the text, check it is ``valid``; 'none' when allowed."""
    def parse(text: str) -> _Number | None:
        if allow_none and text.lower() == "none":
            return None
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected %s, not %r" % (expected, text)) from None
        if not valid(value):
            raise argparse.ArgumentTypeError(invalid)
        return value
    return parse


_size = _number(int, "a number of bytes or 'none'", lambda value: value >= 0,
                "must not be negative", allow_none=True)
_positive_size = _number(int, "a number of bytes or 'none'", lambda value: value >= 1,
                        "must be at least 1", allow_none=True)
_seconds = _number(float, "seconds or 'none'", lambda value: value >= 0,
                   "must not be negative", allow_none=True)
_port = _number(int, "a port number", lambda value: 0 <= value <= 65535,
                "port must be from 0 to 65535")
_positive_int = _number(int, "a whole number", lambda value: value >= 1, "must be at least 1")
_positive_seconds = _number(float, "seconds", lambda value: value > 0, "must be more than 0")
_workers = _number(int, "a whole number", lambda value: value >= 0,
                   "must be 0 (one per core) or more")
_compression_level = _number(int, "a whole number", lambda value: 1 <= value <= 9,
                             "must be from 1 (fastest) to 9 (smallest output)")


_WEBSOCKET_OPTIONS = ("max_message_size", "ping_interval", "ping_timeout", "close_timeout",
                      "max_queue", "max_fragments", "compression_level")
_SERVER_OPTIONS = ("max_connections", "request_timeout", "keep_alive_timeout",
                   "max_request_head", "body_timeout", "max_body_size")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other mistake (argparse would print the usage first)."""
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wsocket", usage=_USAGE, epilog=_EPILOG,
        description="Serve a WSGI app with WebSockets (the demo without one).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", nargs="?", metavar="APP",
                        help="what to serve: module, module:app, module:factory() or "
                             "path/to/app.py[:app] (see below)")
    parser.add_argument("--version", action="version", version="wsocket %s" % __version__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="port (default 8080, 0: any)")
    parser.add_argument("--certfile", help="TLS certificate (serves https:// and wss://)")
    parser.add_argument("--keyfile", help="TLS private key (if not inside --certfile)")
    parser.add_argument("--log-level", default="info", metavar="LEVEL",
                        choices=["debug", "info", "warning", "error", "critical"],
                        help="what goes to stderr: debug, info (default: one access line "
                             "per request), warning, error or critical")
    # Left out of the namespace unless given, so the library's defaults apply.
    unset = argparse.SUPPRESS
    parser.add_argument("--max-message-size", type=_size, default=unset,
                        help="bytes, or 'none' for no limit (default 1 MiB)")
    parser.add_argument("--ping-interval", type=_seconds, default=unset,
                        help="seconds, or 'none' (default 20)")
    parser.add_argument("--ping-timeout", type=_seconds, default=unset,
                        help="seconds, or 'none' (default 20)")
    parser.add_argument("--close-timeout", type=_seconds, default=unset,
                        help="seconds (default 10)")
    parser.add_argument("--no-compression", action="store_true",
                        help="decline permessage-deflate")
    parser.add_argument("--compression-level", type=_compression_level, default=unset,
                        help="zlib level for permessage-deflate, 1 (fastest) to 9 (smallest) "
                             "(default 6)")
    parser.add_argument("--max-fragments", type=_positive_int, default=unset,
                        help="frames in one message; past it: close 1009 "
                             "(default one per 64 bytes of --max-message-size, at least 1024)")
    parser.add_argument("--max-queue", type=_size, default=unset,
                        help="bytes a slow client may have waiting before it is closed "
                             "with 1013, or 'none' (default 4 MiB)")
    parser.add_argument("--workers", type=_workers, default=None, metavar="N",
                        help="processes serving the same port, 0: one per core (default 1); "
                             "broadcasts reach the clients of every worker")
    parser.add_argument("--hub", metavar="URL",
                        help="broadcast backend: memory:// (default) or redis://host:port/db "
                             "(sets WSOCKET_HUB for the app)")
    # The server's limits (see SERVER_OPTIONS in wsocket.server).
    parser.add_argument("--max-connections", type=_positive_int, default=unset,
                        help="open connections at once; past it a 503 (default 10000)")
    parser.add_argument("--request-timeout", type=_positive_seconds, default=unset,
                        help="seconds a client has to send a request head (default 10)")
    parser.add_argument("--keep-alive-timeout", type=_positive_seconds, default=unset,
                        help="seconds an idle keep-alive connection is kept (default 15)")
    parser.add_argument("--max-request-head", type=_positive_int, default=unset,
                        help="bytes of request line and headers; past it a 431 (default 65536)")
    parser.add_argument("--body-timeout", type=_positive_seconds, default=unset,
                        help="seconds to wait for more of a request body; past it a 408 "
                             "(default 10)")
    parser.add_argument("--max-body-size", type=_positive_size, default=unset,
                        help="bytes of a request body; past it a 413, or 'none' "
                             "(default 64 MiB)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["connect"]:  # wsocket connect URL: the terminal client
        from .client.__main__ import main as client_main
        return client_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(message)s")
    options: dict[str, Any] = {name: getattr(args, name) for name in _WEBSOCKET_OPTIONS
                               if hasattr(args, name)}
    if args.no_compression:
        options["compression"] = False
    if args.hub:
        # Before the app is imported: a WSocketApp() made at import reads it.
        os.environ["WSOCKET_HUB"] = args.hub
    from .app import WSocketApp
    from .server import run
    try:
        app = load_app(args.app) if args.app else None
        if isinstance(app, WSocketApp) and options:
            raise CommandLineError("options %s cannot change an app that is already a "
                                   "WSocketApp: set them in WSocketApp(...)"
                                   % ", ".join(sorted(options)))
        if args.keyfile and not args.certfile:
            raise CommandLineError("--keyfile needs --certfile")
        for path in (args.certfile, args.keyfile):
            if path and not os.path.isfile(path):
                raise CommandLineError("no such file: %s" % path)
        limits = {name: getattr(args, name) for name in _SERVER_OPTIONS if hasattr(args, name)}
        run(app, args.host, args.port, certfile=args.certfile, keyfile=args.keyfile,
            workers=args.workers, **options, **limits)
    except (CommandLineError, HubError) as error:
        parser.exit(2, "wsocket: error: %s\n" % error)
    except ssl.SSLError as error:  # an OSError, but not the port's fault
        parser.exit(2, "wsocket: error: cannot use the certificate %s: %s\n"
                    % (args.certfile, error))
    except OSError as error:
        parser.exit(2, "wsocket: error: cannot serve on %s port %d: %s\n"
                    % (args.host, args.port, error.strerror or error))
    except Exception as error:  # e.g. an unreadable certificate
        parser.exit(2, "wsocket: error: %s: %s\n" % (type(error).__name__, error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
