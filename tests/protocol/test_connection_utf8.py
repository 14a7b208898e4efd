"""Connection: UTF-8 of text messages (Autobahn group 6), validated as bytes arrive."""

import pytest

from wsocket.protocol.connection import SERVER, Connection, Failure, Message

from wire_helpers import BINARY, CONTINUATION, MASK, TEXT, frame, header, ref_mask


def first_bad_byte(data):
    """Index of the first byte after which ``data`` can no longer be valid UTF-8.

    An independent reference: the well-formed byte sequences of Unicode 15,
    table 3-7. Returns None when every prefix can still be completed (the data
    may still be truncated; whether it is complete is a separate question).
    """
    i, n = 0, len(data)
    while i < n:
        lead = data[i]
        if lead < 0x80:
            i += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif lead == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif 0xE1 <= lead <= 0xEC or lead in (0xEE, 0xEF):
            ranges = [(0x80, 0xBF)] * 2
        elif lead == 0xED:
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif lead == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= lead <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        elif lead == 0xF4:
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        else:
            return i
        for j, (low, high) in enumerate(ranges):
            k = i + 1 + j
            if k >= n:
                return None
            if not low <= data[k] <= high:
                return k
        i += 1 + len(ranges)
    return None


VALID = {
    "ascii": "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!",
    "kosme": "\u03ba\u1f79\u03c3\u03bc\u03b5",
    "boundaries-first": "\x00\u0080\u0800\U00010000",
    "boundaries-last": "\x7f\u07ff\uffff\U0010ffff",
    "around-surrogates": "\ud7ff\ue000\ufffd",
    "noncharacters": "\ufdd0\ufffe\U0001fffe\U0010fffe",
    "bom": "\ufeffbom",
    "mixed": "a\u00e9\u20ac\U0001d11e" * 5,
    "empty": "",
}

INVALID = {
    # 6.3: valid text with a surrogate in the middle
    "kosme-edited": bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564"),
    # 6.6 / 6.8: code points above U+10FFFF, 5- and 6-byte forms
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f7-bf-bf-bf": b"\xf7\xbf\xbf\xbf",
    "five-byte-f8": b"\xf8\x88\x80\x80\x80",
    "five-byte-fb": b"\xfb\xbf\xbf\xbf\xbf",
    "six-byte-fc": b"\xfc\x84\x80\x80\x80\x80",
    "six-byte-fd": b"\xfd\xbf\xbf\xbf\xbf\xbf",
    # 6.9-6.11: overlong forms
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-slash-5": b"\xf8\x80\x80\x80\xaf",
    "overlong-slash-6": b"\xfc\x80\x80\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf",
    "overlong-max-3": b"\xe0\x9f\xbf",
    "overlong-max-4": b"\xf0\x8f\xbf\xbf",
    "overlong-nul-2": b"\xc0\x80",
    # 6.12: lone continuation bytes
    "lone-80": b"\x80",
    "lone-bf": b"\xbf",
    "continuations-80-bf-80": b"\x80\xbf\x80",
    "continuation-after-ascii": b"abc\xa0def",
    # 6.13-6.15: start bytes not followed by continuations, impossible bytes
    "c0-space": b"\xc0 ",
    "e0-space": b"\xe0 ",
    "f0-space": b"\xf0 ",
    "fe": b"\xfe",
    "ff": b"\xff",
    "fe-fe-ff-ff": b"\xfe\xfe\xff\xff",
    "c2-c2": b"\xc2\xc2",
    # 6.18-6.19: UTF-16 surrogates, single and paired
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-db7f": b"\xed\xad\xbf",
    "surrogate-db80": b"\xed\xae\x80",
    "surrogate-dbff": b"\xed\xaf\xbf",
    "surrogate-dc00": b"\xed\xb0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "surrogate-after-text": "\u03ba\u1f79".encode() + b"\xed\xbf\xbf" + b"tail",
    # truncated at the end of the message
    "truncated-2": b"\xce",
    "truncated-3": b"\xe2\x82",
    "truncated-4": b"\xf0\x9d\x84",
    "truncated-4-one": b"\xf4",
    "truncated-ed": b"ok\xed\x9f",
    "kosme-truncated": "\u03ba\u1f79\u03c3\u03bc".encode() + b"\xce",
}


def test_reference_agrees_with_itself():
    # A sanity check of the reference: valid text has no bad byte and decodes.
    for text in VALID.values():
        assert first_bad_byte(text.encode()) is None
    for data in INVALID.values():
        bad = first_bad_byte(data)
        if bad is None:
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")


def _utf8_failure(events):
    assert len(events) == 1 and isinstance(events[0], Failure), events
    assert events[0].code == 1007
    assert events[0].reason.startswith(("invalid UTF-8 in text message",
                                        "text message ends inside a UTF-8 sequence"))
    return events[0]


# -- valid text ----------------------------------------------------------------------

@pytest.mark.parametrize("name", VALID)
def test_valid_text_in_one_frame(name):
    text = VALID[name]
    assert Connection(SERVER).receive_data(frame(TEXT, text)) == [Message(text)]


@pytest.mark.parametrize("name", VALID)
def test_valid_text_in_one_byte_frames(name):
    raw = VALID[name].encode()
    if len(raw) < 2:
        return
    data = frame(TEXT, raw[:1], fin=False)
    data += b"".join(frame(CONTINUATION, raw[i:i + 1], fin=False) for i in range(1, len(raw) - 1))
    data += frame(CONTINUATION, raw[-1:])
    assert Connection(SERVER).receive_data(data) == [Message(VALID[name])]


@pytest.mark.parametrize("name", VALID)
def test_valid_text_one_frame_fed_a_byte_at_a_time(name):
    data = frame(TEXT, VALID[name])
    connection = Connection(SERVER)
    per_byte = [connection.receive_data(data[i:i + 1]) for i in range(len(data))]
    assert per_byte == [[]] * (len(data) - 1) + [[Message(VALID[name])]]


SPLIT_TEXT = "\u03ba\u1f79\u03c3\u03bc\u03b5-\u00e9\u20ac\U0001d11e\U0010ffff\u0800\u07ff"
SPLIT_RAW = SPLIT_TEXT.encode()


@pytest.mark.parametrize("cut", range(len(SPLIT_RAW) + 1))
def test_valid_text_split_at_every_byte_across_two_frames(cut):
    data = frame(TEXT, SPLIT_RAW[:cut], fin=False) + frame(CONTINUATION, SPLIT_RAW[cut:])
    connection = Connection(SERVER)
    assert connection.receive_data(data) == [Message(SPLIT_TEXT)]


@pytest.mark.parametrize("cut", range(len(SPLIT_RAW) + 1))
def test_valid_text_split_at_every_byte_across_two_frames_fed_separately(cut):
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, SPLIT_RAW[:cut], fin=False)) == []
    assert connection.receive_data(frame(CONTINUATION, SPLIT_RAW[cut:])) == [Message(SPLIT_TEXT)]


@pytest.mark.parametrize("cut", range(len(SPLIT_RAW) + 1))
def test_valid_text_one_frame_split_at_every_byte(cut):
    data = frame(TEXT, SPLIT_RAW)
    body = len(data) - len(SPLIT_RAW)
    connection = Connection(SERVER)
    first = connection.receive_data(data[:body + cut])
    if cut == len(SPLIT_RAW):
        assert first == [Message(SPLIT_TEXT)]
    else:
        assert first == []
        assert connection.receive_data(data[body + cut:]) == [Message(SPLIT_TEXT)]


@pytest.mark.parametrize("first_cut", range(1, 9))
@pytest.mark.parametrize("second_cut", range(1, 9))
def test_valid_text_in_three_frames(first_cut, second_cut):
    raw = "\U0001d11e\u20ac\u00e9".encode()  # 4 + 3 + 2 bytes
    a, b = sorted((first_cut, second_cut))
    data = (frame(TEXT, raw[:a], fin=False) + frame(CONTINUATION, raw[a:b], fin=False)
            + frame(CONTINUATION, raw[b:]))
    assert Connection(SERVER).receive_data(data) == [Message("\U0001d11e\u20ac\u00e9")]


# -- invalid text: fail at the chunk with the bad byte ---------------------------------------

@pytest.mark.parametrize("name", INVALID)
def test_invalid_text_in_one_frame(name):
    connection = Connection(SERVER)
    _utf8_failure(connection.receive_data(frame(TEXT, INVALID[name])))
    assert connection.receive_data(frame(TEXT, "after")) == []


@pytest.mark.parametrize("name", INVALID)
def test_invalid_text_fails_at_the_bad_byte_inside_an_incomplete_frame(name):
    raw = INVALID[name] + b"-and the frame goes on"
    bad = first_bad_byte(raw)
    connection = Connection(SERVER)
    assert connection.receive_data(header(TEXT, len(raw), key=MASK)) == []
    assert bad is not None  # a truncated sequence followed by ASCII: the ASCII byte is bad
    masked = ref_mask(raw, MASK)
    for i in range(bad):
        assert connection.receive_data(masked[i:i + 1]) == [], "failed early at byte %d" % i
    _utf8_failure(connection.receive_data(masked[bad:bad + 1]))
    assert connection.receive_data(masked[bad + 1:]) == []


@pytest.mark.parametrize("name", INVALID)
@pytest.mark.parametrize("piece", [2, 3, 5])
def test_invalid_text_fails_at_the_chunk_containing_the_bad_byte(name, piece):
    raw = INVALID[name] + b"-and the frame goes on"
    bad = first_bad_byte(raw)
    data = frame(TEXT, raw)
    body = len(data) - len(raw)
    connection = Connection(SERVER)
    assert connection.receive_data(data[:body]) == []
    offsets = range(0, len(raw), piece)
    for start in offsets:
        events = connection.receive_data(data[body + start:body + start + piece])
        if start + piece <= bad:
            assert events == []
        else:
            _utf8_failure(events)
            assert start <= bad < start + piece
            break
    else:
        pytest.fail("no failure")


@pytest.mark.parametrize("name", INVALID)
def test_invalid_text_in_one_byte_fragments_fails_at_the_bad_fragment(name):
    raw = INVALID[name]
    bad = first_bad_byte(raw)
    connection = Connection(SERVER)
    frames = [frame(TEXT if i == 0 else CONTINUATION, raw[i:i + 1], fin=i == len(raw) - 1)
              for i in range(len(raw))]
    stop = bad if bad is not None else len(raw) - 1  # truncated: fails on the final frame
    for i in range(stop):
        assert connection.receive_data(frames[i]) == [], "failed early at fragment %d" % i
    _utf8_failure(connection.receive_data(frames[stop]))


@pytest.mark.parametrize("name", [n for n in INVALID if first_bad_byte(INVALID[n]) is None])
def test_truncated_text_fails_only_when_the_message_ends(name):
    raw = INVALID[name]
    connection = Connection(SERVER)
    assert connection.receive_data(frame(TEXT, raw, fin=False)) == []
    assert connection.receive_data(frame(CONTINUATION, b"", fin=False)) == []
    _utf8_failure(connection.receive_data(frame(CONTINUATION, b"")))


@pytest.mark.parametrize("name", [n for n in INVALID if first_bad_byte(INVALID[n]) is None])
def test_truncated_sequence_completed_in_the_next_frame_is_valid(name):
    raw = INVALID[name]
    completion = b"\x80" * _missing(raw)  # 80 completes every sample's last sequence
    text = (raw + completion).decode("utf-8")
    data = frame(TEXT, raw, fin=False) + frame(CONTINUATION, completion)
    assert Connection(SERVER).receive_data(data) == [Message(text)]


def _missing(raw):
    """How many continuation bytes a truncated tail still needs."""
    for back in range(1, 4):
        lead = raw[-back]
        if lead >= 0xC0:
            needed = 1 if lead < 0xE0 else 2 if lead < 0xF0 else 3
            return needed - (back - 1)
    raise AssertionError("no lead byte")


def test_message_after_valid_fragmented_text_uses_a_fresh_decoder():
    connection = Connection(SERVER)
    data = frame(TEXT, b"\xe2\x82", fin=False) + frame(CONTINUATION, b"\xac")
    assert connection.receive_data(data) == [Message("\u20ac")]
    assert connection.receive_data(frame(TEXT, b"\xac")) == [
        Failure(1007, "invalid UTF-8 in text message: invalid start byte")]


@pytest.mark.parametrize("name", INVALID)
def test_binary_messages_are_not_validated(name):
    raw = INVALID[name]
    assert Connection(SERVER).receive_data(frame(BINARY, raw)) == [Message(raw)]
