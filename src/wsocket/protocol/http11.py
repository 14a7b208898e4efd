"""HTTP/1.1 requests, sans I/O: the RFC 9110/9112 grammar once, and the checks made of it.

The server reads bytes off a socket; everything about what those bytes
mean is here, so that it can be tested (and fuzzed) without a socket:

- ``find_head_end(buffer)``: where a request head ends, or ``HTTPError``
  when the bytes so far can never become one (a bare LF, too long);
- ``parse_head(head)``: the request line and header fields, as a
  ``RequestHead`` with its body framing (none, Content-Length, chunked);
- ``ChunkedDecoder``: a chunked body, decoded a piece at a time.

Every refusal is an ``HTTPError`` whose ``status`` is the answer (400, 413,
431, 501, 505); after one the connection must close, since where the next
request would start is unknown. The policy is RFC 9112's strict reading:
lines end with CRLF only (a bare LF or bare CR anywhere is refused, never
taken as a line end), no obsolete line folding, no whitespace before a
colon, no control character in a field value but HTAB.
"""

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from .frames import load_accelerator

__all__ = [
    "HTTPError", "BadRequest", "HeadTooLarge", "BodyTooLarge", "UnsupportedCoding",
    "VersionNotSupported", "RequestHead", "find_head_end", "parse_head", "ChunkedDecoder",
    "InvalidResponse", "check_response_status", "check_response_header", "is_token",
    "status_phrase",
]


# -- the grammar, one regex per ABNF rule (RFC 9110 section 5.6, RFC 9112) ---------

TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"
OWS = rb"[ \t]*"  # also BWS
VCHAR = rb"[\x21-\x7e]"
FIELD_VCHAR = rb"[\x21-\x7e\x80-\xff]"  # VCHAR / obs-text
FIELD_CONTENT = FIELD_VCHAR + rb"(?:[ \t\x21-\x7e\x80-\xff]*" + FIELD_VCHAR + rb")?"
# *field-content is the strings of SP, HTAB and field-vchar that start and end
# with a field-vchar: written as runs of field-vchar between runs of whitespace,
# the same language, which the regex engine matches without backtracking.
FIELD_VALUE = rb"(?:" + FIELD_VCHAR + rb"+(?:[ \t]+" + FIELD_VCHAR + rb"+)*)?"
FIELD_LINE = rb"(?P<name>" + TOKEN + rb"):" + OWS + rb"(?P<value>" + FIELD_VALUE + rb")" + OWS
METHOD = TOKEN
REQUEST_TARGET = VCHAR + rb"+"  # its form (origin, absolute, ...) is checked apart
HTTP_VERSION = rb"HTTP/(?P<major>[0-9])\.(?P<minor>[0-9])"
REQUEST_LINE = (rb"(?P<method>" + METHOD + rb") (?P<target>" + REQUEST_TARGET + rb") "
                + HTTP_VERSION)
QDTEXT = rb"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
QUOTED_PAIR = rb"\\[\t \x21-\x7e\x80-\xff]"
QUOTED_STRING = rb'"(?:' + QDTEXT + rb"|" + QUOTED_PAIR + rb')*"'
# RFC 9112 7.1.1 lets BWS come before each ";", but h11 and other parsers do not
# before the first one: a size followed by whitespace is refused, to read no
# chunk line otherwise than they do.
CHUNK_EXT_ITEM = (rb";" + OWS + TOKEN + rb"(?:" + OWS + rb"=" + OWS
                  + rb"(?:" + TOKEN + rb"|" + QUOTED_STRING + rb"))?")
CHUNK_EXT = rb"(?:" + CHUNK_EXT_ITEM + rb"(?:" + OWS + CHUNK_EXT_ITEM + rb")*)?"
MAX_CHUNK_SIZE_DIGITS = 16  # 2**64 - 1 at most: larger is no body anyone sends
CHUNK_LINE = rb"(?P<size>[0-9A-Fa-f]{1,%d})" % MAX_CHUNK_SIZE_DIGITS + CHUNK_EXT
TRANSFER_PARAMETER = TOKEN + OWS + rb"=" + OWS + rb"(?:" + TOKEN + rb"|" + QUOTED_STRING + rb")"
TRANSFER_CODING = (rb"(?P<coding>" + TOKEN + rb")(?P<parameters>(?:" + OWS + rb";" + OWS
                   + TRANSFER_PARAMETER + rb")*)")
MAX_CONTENT_LENGTH_DIGITS = 18  # below 2**63
CONTENT_LENGTH = rb"[0-9]{1,%d}" % MAX_CONTENT_LENGTH_DIGITS
REASON_PHRASE = rb"[\t \x21-\x7e\x80-\xff]*"
STATUS = rb"[1-9][0-9][0-9] " + REASON_PHRASE  # a WSGI status: status-code SP reason-phrase
# RFC 3986 host [":" port] with the characters of reg-name, IP-literal and IPv4.
HOST = rb"[A-Za-z0-9\-._~!$&'()*+,;=%\[\]:]*"
ABSOLUTE_FORM = rb"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<authority>[^/?#@]*)(?P<rest>[/?].*)?"


def _text(pattern: bytes) -> str:
    """A pattern of the grammar for the head decoded as Latin-1 (a byte is a character)."""
    return pattern.decode("latin-1")


# Heads are parsed as Latin-1 text (what WSGI hands on), chunk lines as bytes.
_field_line_text = re.compile(_text(FIELD_LINE))
_token_text = re.compile(_text(TOKEN))
# What a field line may hold (CR and LF are checked as line ends apart):
# deleting these bytes from a valid block leaves nothing.
_TCHAR_BYTES = b"!#$%&'*+-.^_`|~" + bytes(range(0x30, 0x3a)) + bytes(range(0x41, 0x5b)) \
    + bytes(range(0x61, 0x7b))
_FIELD_BYTES = b"\r\n\t " + bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100))
_field_line = re.compile(FIELD_LINE)  # trailers
_request_line = re.compile(_text(REQUEST_LINE))
_chunk_line = re.compile(CHUNK_LINE)
_transfer_coding = re.compile(_text(TRANSFER_CODING))
_content_length = re.compile(_text(CONTENT_LENGTH))
_token = re.compile(TOKEN)
_host = re.compile(_text(HOST))
_absolute_form = re.compile(_text(ABSOLUTE_FORM), re.DOTALL)
_bare_lf = re.compile(rb"(?<!\r)\n")
# Response side, on str as WSGI gives them: a reason phrase and a field value
# hold no control character but HTAB (RFC 9112 4, RFC 9110 5.5).
_status = re.compile(_text(STATUS))
_field_value_text = re.compile(_text(OWS + FIELD_VALUE + OWS))


# -- errors ------------------------------------------------------------------------

class HTTPError(Exception):
    """A request refused; ``status`` is the answer, and the connection closes after it."""

    status = 400

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(HTTPError):
    status = 400


class BodyTooLarge(HTTPError):
    status = 413


class HeadTooLarge(HTTPError):
    status = 431


class UnsupportedCoding(HTTPError):
    status = 501


class VersionNotSupported(HTTPError):
    status = 505


# -- the request head --------------------------------------------------------------

class RequestHead(NamedTuple):
    """A parsed request head. Names keep their case; values are without OWS."""

    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    path: str  # of the target, still percent-encoded; "*" for OPTIONS *
    query: str
    headers: list[tuple[str, str]]
    host: Optional[str]  # the absolute-form target's authority, else the Host field
    content_length: Optional[int]  # None: no Content-Length
    chunked: bool
    keep_alive: bool
    expect_continue: bool


def is_token(text: str) -> bool:
    return _token_text.fullmatch(text) is not None


def find_head_end(buffer: Union[bytes, bytearray], limit: int) -> int:
    """Where the head in ``buffer`` ends (the index of its CRLFCRLF), or -1 for not yet.

    Refuses at once what more bytes cannot mend: a bare LF (which a proxy
    may take as a line end where we would not), a head past ``limit`` bytes.
    """
    end = buffer.find(b"\r\n\r\n")
    if end >= 0:
        if end > limit:
            raise HeadTooLarge("request head larger than %d bytes" % limit)
        return end
    if len(buffer) > limit:
        raise HeadTooLarge("request head larger than %d bytes" % limit)
    if _bare_lf.search(buffer):
        raise BadRequest("bare LF in the request head (lines end with CRLF)")
    return -1


# (method, target, http11, [(name, value), ...]) of a request head
SplitHead = tuple[str, str, bool, list[tuple[str, str]]]
# The usual head in one C call (``_speedups.split_request_head``), or None.
split_request_head: Optional[Callable[[bytes], Optional[SplitHead]]] = getattr(
    load_accelerator(), "split_request_head", None)

if TYPE_CHECKING:
    # The stub of the C module must match what is expected of it here.
    from .. import _speedups

    _check_split_request_head: Callable[[bytes], Optional[SplitHead]] = \
        _speedups.split_request_head


def parse_head(head: bytes) -> RequestHead:
    """Parse a request head (without its final CRLFCRLF) or raise ``HTTPError``."""
    split = split_request_head(head) if split_request_head is not None else None
    if split is None:  # no accelerator, or not the usual kind of head: the error is named here
        split = _split_head(head)
    method, target, http11, headers = split
    hosts: list[str] = []
    lengths: list[str] = []
    codings: list[str] = []
    connection: list[str] = []
    expect: list[str] = []
    special = {"host": hosts, "content-length": lengths, "transfer-encoding": codings,
               "connection": connection, "expect": expect}
    for name, value in headers:
        values = special.get(name.lower())  # ASCII once checked: a name is a token
        if values is not None:
            values.append(value)

    path, query, authority = _target_parts(method, target)
    chunked = False
    content_length = None
    if codings:
        if not http11:
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        if lengths:
            raise BadRequest("both Transfer-Encoding and Content-Length")
        chunked = _check_transfer_codings(codings)
    elif lengths:
        content_length = _content_length_of(lengths)

    if len(hosts) > 1:
        raise BadRequest("more than one Host header")
    if http11 and not hosts:
        raise BadRequest("no Host header (HTTP/1.1 requires one)")
    if hosts and _host.fullmatch(hosts[0]) is None:
        raise BadRequest("invalid Host header")
    host = authority if authority is not None else (hosts[0] if hosts else None)

    options: set[str] = set()
    if connection:
        options = {item.strip(" \t").lower() for value in connection
                   for item in value.split(",")}
    if http11:
        keep_alive = "close" not in options
    else:
        keep_alive = "keep-alive" in options and "close" not in options
    expect_continue = http11 and any(value.lower() == "100-continue" for value in expect)
    return RequestHead(method, target, "HTTP/1.1" if http11 else "HTTP/1.0", path, query,
                       headers, host, content_length, chunked, keep_alive, expect_continue)


def _split_head(head: bytes) -> SplitHead:
    """(method, target, http11, [(name, value), ...]) of a request head, or ``HTTPError``.

    The Python twin of ``_speedups.split_request_head``, which takes the usual
    heads and leaves the rest to this: the same rules, and every error named.
    """
    text = head.decode("latin-1")
    line_end = text.find("\r\n")
    request_line = text if line_end < 0 else text[:line_end]
    match = _request_line.fullmatch(request_line)
    if match is None:
        if "\n" in request_line or "\r" in request_line:
            raise BadRequest("bare CR or LF in the request line")
        raise BadRequest("malformed request line")
    major, minor = match.group("major"), match.group("minor")
    if major != "1" or minor not in ("0", "1"):
        raise VersionNotSupported("unsupported HTTP version HTTP/%s.%s" % (major, minor))
    method, target = match.group("method", "target")

    # The field lines. Checked as FIELD_LINE says, in fewer steps: no character
    # outside the field-line alphabet in the whole block, CR and LF only as
    # CRLF, then per line a token, a colon, and the value without its OWS.
    headers = []
    if line_end >= 0:
        block = text[line_end + 2:]
        crlf = block.count("\r\n")
        if head[line_end + 2:].translate(None, _FIELD_BYTES) or block.count("\r") != crlf \
                or block.count("\n") != crlf:
            raise BadRequest(_field_line_error(_first_bad_line(block)))
        for line in block.split("\r\n"):
            name, colon, value = line.partition(":")
            if not name or not colon:
                raise BadRequest(_field_line_error(line.encode("latin-1")))
            headers.append((name, value.strip(" \t")))
        names = "".join([name for name, _ in headers]).encode("latin-1")
        if names.translate(None, _TCHAR_BYTES):  # a name holds a byte not a tchar
            raise BadRequest(_field_line_error(_first_bad_line(block)))
    return method, target, minor == "1", headers


def _first_bad_line(block: str) -> bytes:
    for line in block.split("\r\n"):
        if _field_line_text.fullmatch(line) is None:
            return line.encode("latin-1")
    return block.encode("latin-1")


def _field_line_error(line: bytes) -> str:
    if b"\r" in line or b"\n" in line:
        return "bare CR or LF in a header line"
    if line[:1] in (b" ", b"\t"):
        return "malformed header line: obsolete line folding or whitespace before a name"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "malformed header line: no colon"
    if _token.fullmatch(name) is None:
        return "malformed header line: the name %r is not a token" % name.decode("latin-1")
    return "malformed header line: control character in the value of %s" % name.decode("ascii")


def _target_parts(method: str, target: str) -> tuple[str, str, Optional[str]]:
    """(path, query, authority) of a request target, by its form (RFC 9112 3.2)."""
    authority = None
    if target.startswith("/"):  # origin-form
        pass
    elif target == "*":  # asterisk-form
        if method != "OPTIONS":
            raise BadRequest("request target * is for OPTIONS only")
        return "*", "", None
    else:
        absolute = _absolute_form.fullmatch(target)
        if absolute is not None:  # absolute-form: its authority is the host
            authority = absolute.group("authority")
            if not authority or _host.fullmatch(authority) is None:
                raise BadRequest("invalid authority in the request target")
            rest = absolute.group("rest") or ""
            target = rest if rest.startswith("/") else "/" + rest
        elif method == "CONNECT":  # authority-form
            if _host.fullmatch(target) is None:
                raise BadRequest("invalid request target for CONNECT")
            return "", "", target
        else:
            raise BadRequest("malformed request target")
    path, _, query = target.partition("?")
    return path, query, authority


def _check_transfer_codings(fields: list[str]) -> bool:
    """True for a chunked body; refuses what RFC 9112 6.1 and 6.3 refuse."""
    codings = []
    for field in fields:
        for element in field.split(","):
            element = element.strip(" \t")
            if not element:
                # RFC 9110 5.6.1 lets a recipient skip empty list elements; refused
                # here (as h11 does), since a proxy may read "chunked" where we would not.
                raise BadRequest("empty Transfer-Encoding or empty element in it")
            match = _transfer_coding.fullmatch(element)
            if match is None:
                raise BadRequest("malformed Transfer-Encoding")
            codings.append((match.group("coding").lower(),
                            match.group("parameters")))
    names = [name for name, _ in codings]
    if names[-1] != "chunked":
        if "chunked" in names:
            raise BadRequest("Transfer-Encoding chunked is not the final coding")
        raise UnsupportedCoding("unsupported Transfer-Encoding: %s" % ", ".join(names))
    if names.count("chunked") > 1:
        raise BadRequest("Transfer-Encoding chunked more than once")
    if codings[-1][1]:
        raise BadRequest("Transfer-Encoding chunked takes no parameters")
    if len(names) > 1:
        raise UnsupportedCoding("unsupported Transfer-Encoding: %s" % ", ".join(names))
    return True


def _content_length_of(fields: list[str]) -> int:
    """One length, from one or more fields each a list of lengths (RFC 9110 8.6)."""
    values = set()
    for field in fields:
        for element in field.split(","):
            element = element.strip(" \t")
            if _content_length.fullmatch(element) is None:
                raise BadRequest("invalid Content-Length %r" % field)
            values.add(int(element))
    if len(values) != 1:
        raise BadRequest("Content-Length values differ")
    return values.pop()


# -- chunked bodies ----------------------------------------------------------------

class ChunkedDecoder:
    """A chunked body (RFC 9112 7.1), decoded from the start of a buffer.

    ``decode(buffer, limit)`` takes what it can from ``buffer`` (a
    bytearray, consumed in place) and returns up to ``limit`` bytes of body,
    ``b""`` at the end of the body (``done``), or None when it needs more
    bytes. The framing is checked as it goes: a chunk line is 1 to 16 hex
    digits with extensions of the grammar, CRLF follows each chunk's data,
    trailer fields are field lines, bounded in all by ``max_trailers``.
    """

    _SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)
    max_line = 4096  # a chunk line with its extensions

    def __init__(self, max_trailers: int = 65536) -> None:
        self.max_trailers = max_trailers
        self._state = self._SIZE
        self._remaining = 0
        self._trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self._state == self._DONE

    def _line(self, buffer: bytearray, limit: int, what: str) -> Optional[bytes]:
        end = buffer.find(b"\r\n", 0, limit + 2)
        if end < 0:
            if _bare_lf.search(buffer, 0, limit + 2):
                raise BadRequest("bare LF in the %s (lines end with CRLF)" % what)
            if len(buffer) > limit:
                raise BadRequest("%s longer than %d bytes" % (what, limit))
            return None
        line = bytes(buffer[:end])
        del buffer[:end + 2]
        return line

    def decode(self, buffer: bytearray, limit: int) -> Optional[bytes]:
        while True:
            state = self._state
            if state == self._DATA:
                if not buffer:
                    return None
                count = min(limit, self._remaining, len(buffer))
                data = bytes(buffer[:count])
                del buffer[:count]
                self._remaining -= count
                if self._remaining == 0:
                    self._state = self._DATA_END
                return data
            if state == self._SIZE:
                line = self._line(buffer, self.max_line, "chunk line")
                if line is None:
                    return None
                match = _chunk_line.fullmatch(line)
                if match is None:
                    raise BadRequest("invalid chunk size")
                self._remaining = int(match.group("size"), 16)
                self._state = self._DATA if self._remaining else self._TRAILERS
            elif state == self._DATA_END:
                if buffer[:2] != b"\r\n"[:len(buffer)]:
                    raise BadRequest("chunk data not followed by CRLF")
                if len(buffer) < 2:
                    return None
                del buffer[:2]
                self._state = self._SIZE
            elif state == self._TRAILERS:
                room = self.max_trailers - self._trailer_bytes
                line = self._line(buffer, max(room, 0), "trailer section")
                if line is None:
                    return None
                self._trailer_bytes += len(line) + 2
                if not line:
                    self._state = self._DONE
                    return b""
                if _field_line.fullmatch(line) is None:
                    raise BadRequest("malformed trailer field: " + _field_line_error(line))
            else:
                return b""


# -- the response, as a WSGI app gives it --------------------------------------------

class InvalidResponse(ValueError):
    """A status or header an app gave that must not reach the wire (it would split it)."""


def check_response_status(status: str) -> None:
    """A WSGI status such as "200 OK"; ValueError for one that would split the response."""
    if not isinstance(status, str) or _status.fullmatch(status) is None:
        raise InvalidResponse("invalid WSGI status %r: three digits, a space, a reason phrase "
                         "without control characters" % (status,))


def check_response_header(name: str, value: str) -> None:
    """ValueError for a header that is not a token name and a value without CR, LF, NUL..."""
    if _token_text.fullmatch(name) is None:
        raise InvalidResponse("invalid response header name %r: not a token" % (name,))
    if _field_value_text.fullmatch(value) is None:
        raise InvalidResponse("invalid value of response header %s: %r (a control character, "
                         "or not latin-1)" % (name, value))
    if name.lower() == "content-length" and _content_length.fullmatch(value.strip(" \t")) \
            is None:
        raise InvalidResponse("invalid response header Content-Length: %r" % (value,))


# -- status phrases --------------------------------------------------------------

# Each class of status has a generic phrase for the codes HTTPStatus does not know.
_CLASS_PHRASES = {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error",
                  5: "Server Error"}


def status_phrase(code: int) -> str:
    """The reason phrase for status ``code``: ``404`` -> ``"Not Found"``.

    A code ``http.HTTPStatus`` does not name gets the generic phrase of its
    class (``"Client Error"`` for 499), and ``"Unknown"`` past 599.
    """
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return _CLASS_PHRASES.get(code // 100, "Unknown")
