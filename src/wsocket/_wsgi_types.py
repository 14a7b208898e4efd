"""The types of PEP 3333 (WSGI), named once for the whole package.

These are aliases and a Protocol, so any WSGI server's ``environ`` and
``start_response`` and any WSGI application fit them; nothing here exists
for the type checker only, so the module can be imported at run time too.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Callable, Optional, Protocol

__all__ = ["Environ", "ExcInfo", "Headers", "StartResponse", "Write", "WSGIApp"]

# The request: CGI variables plus the wsgi.* keys (str keys, values of any type).
Environ = dict[str, Any]

# Response headers: (name, value) pairs, in order.
Headers = list[tuple[str, str]]

# What ``sys.exc_info()`` returns while an exception is handled: what
# ``start_response`` takes after an error (PEP 3333).
ExcInfo = tuple[type[BaseException], BaseException, Optional[TracebackType]]

# The legacy ``write`` callable that ``start_response`` returns.
Write = Callable[[bytes], object]


class StartResponse(Protocol):
    """The ``start_response`` callable a WSGI server hands to the application."""

    def __call__(self, status: str, headers: Headers,
                 exc_info: ExcInfo | None = ..., /) -> Write: ...


# An application: called with the environ and start_response, it returns the body.
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
