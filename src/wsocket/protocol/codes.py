"""Close codes (RFC 6455 7.4, IANA "WebSocket Close Code Number Registry").

``CloseCode`` is an ``IntEnum``: its members are ints, so they go wherever a
close code goes and compare equal to the bare numbers. Codes without a name
(3000-4999, chosen by libraries and applications) stay plain ints.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "is_valid_close_code", "close_code"]


class CloseCode(enum.IntEnum):
    """The close codes RFC 6455 and the IANA registry name."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never sent: the close frame carried no code
    ABNORMAL_CLOSURE = 1006  # never sent: the connection dropped without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never sent: the TLS handshake failed

    # "1000", as Python 3.11's IntEnum prints it, on every supported version
    # (3.9 and 3.10 would print "CloseCode.NORMAL_CLOSURE").
    __str__ = int.__repr__


def is_valid_close_code(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 7.4, IANA registry).

    1004-1006 and 1015 are reserved for local use and never sent; 1016-2999
    belong to future revisions of the protocol; 3000-4999 are for libraries
    and applications.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


_BY_VALUE = {int(member): member for member in CloseCode}


def close_code(code: int) -> int:
    """``code`` as a ``CloseCode`` member when it has a name, else as it is.

    For reporting a code read off the wire; a dictionary look-up, so unnamed
    application codes (3000-4999) pass through without an exception.
    """
    return _BY_VALUE.get(code, code)
