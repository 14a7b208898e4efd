"""The event app (SPEC "The app"): Event, handler order and threads, onclose exactly once.

Servers run in-process (the ``serve`` fixture: wsocket's real server on a
real socket), so the tests can see each handler call as it happens; the
peers are the websockets library and hand-written raw frames.
"""

import json
import logging
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.netutil import (
    CLOSE, TEXT, TIMEOUT, Reader, client_frame, close_frame, open_connection, request, upgrade,
    ws_url, wait_for, wsocket_records,
)
from wsocket import Event, ThreadingWSGIServer, WSocketApp


@pytest.fixture
def logged_errors():
    """ERROR records of the ``wsocket`` logger, whether or not it propagates to the root."""
    with wsocket_records(logging.ERROR) as records:
        yield records




# -- Event ------------------------------------------------------------------------------

def first(*args):
    calls.append(("first",) + args)


def second(*args):
    calls.append(("second",) + args)


calls = []


@pytest.fixture(autouse=True)
def clear_calls():
    calls.clear()


def test_event_add_and_remove_in_every_spelling():
    event = Event()
    event += first
    event + second  # "+" changes the event in place too (the original API)
    event(1, 2)
    assert calls == [("first", 1, 2), ("second", 1, 2)]
    event -= first
    event(3)
    assert calls[2:] == [("second", 3)]
    event - second
    assert not event and len(event) == 0
    event += first
    event += second
    event.clear()
    event()
    assert calls[3:] == []


def test_event_mistakes_are_clear():
    event = Event()
    with pytest.raises(TypeError, match="callable"):
        event += "not callable"
    with pytest.raises(ValueError, match="not a handler"):
        event -= first


def test_assigning_a_function_replaces_the_event():
    app = WSocketApp()
    app.onmessage += first
    app.onmessage += second
    app.onmessage = second
    assert isinstance(app.onmessage, Event)
    assert list(app.onmessage) == [second]
    app.onmessage += first  # still an event afterwards
    assert list(app.onmessage) == [second, first]
    app.onmessage = None
    assert not app.onmessage
    replacement = Event(first)
    app.onclose = replacement
    assert app.onclose is replacement


def test_events_belong_to_the_instance():
    one, two = WSocketApp(), WSocketApp()
    one.onconnect += first
    assert not two.onconnect


def test_a_failing_handler_is_logged_and_the_next_one_runs(logged_errors):
    def broken(*args):
        raise RuntimeError("handler broke")

    event = Event(broken, second)
    event("x")
    assert calls == [("second", "x")]
    [record] = logged_errors
    assert record.getMessage().startswith("error in event handler ")
    assert "broken" in record.getMessage()
    assert record.exc_info[0] is RuntimeError


# -- handlers of one connection one at a time, in order ----------------------------------------

def _run_two_talkers(serve, **server_options):
    """1000 messages on each of two connections; returns what the handlers saw.

    ``seen[path]``: (message, thread id) per handler call; ``overlaps[path]``:
    how many times a handler of that connection started while another ran.
    """
    app = WSocketApp()
    seen = {}
    running = {}
    overlaps = {"/a": 0, "/b": 0}
    lock = threading.Lock()

    def on_connect(client):
        with lock:
            seen[client.path] = [("connect", threading.get_ident())]
            running[client.path] = 0

    def on_message(message, client):
        with lock:
            running[client.path] += 1
            if running[client.path] > 1:
                overlaps[client.path] += 1
        seen[client.path].append((message, threading.get_ident()))
        if message.endswith("7"):
            time.sleep(0.001)  # widen the window for an overlapping call to show
        client.send(message)
        with lock:
            running[client.path] -= 1

    app.onconnect += on_connect
    app.onmessage += on_message
    server = serve(app, **server_options)
    expected = ["message %d" % number for number in range(1000)]
    received = {}
    errors = []

    def talk(path):
        try:
            with connect(ws_url(server, path), open_timeout=TIMEOUT,
                         close_timeout=TIMEOUT) as websocket:
                for number, text in enumerate(expected):
                    websocket.send(text)
                    if number % 100 == 0:
                        time.sleep(0.02)  # quiet moments: the connection waits idle
                received[path] = [websocket.recv(timeout=TIMEOUT) for _ in expected]
        except Exception as error:  # shown by the assertion below
            errors.append(error)

    talkers = [threading.Thread(target=talk, args=(path,)) for path in ("/a", "/b")]
    for talker in talkers:
        talker.start()
    for talker in talkers:
        talker.join(60)
    assert not errors, errors
    assert received == {"/a": expected, "/b": expected}
    for path in ("/a", "/b"):
        assert [message for message, _ in seen[path]] == ["connect"] + expected
    return seen, overlaps


def test_1000_messages_in_order_one_handler_at_a_time_per_connection(serve):
    seen, overlaps = _run_two_talkers(serve)
    assert overlaps == {"/a": 0, "/b": 0}
    for path in ("/a", "/b"):
        assert threading.get_ident() not in {ident for _, ident in seen[path]}


def test_without_parking_each_connection_keeps_its_own_thread(serve, monkeypatch):
    monkeypatch.setattr(ThreadingWSGIServer, "parks_idle_websockets", False)
    seen, overlaps = _run_two_talkers(serve)
    assert overlaps == {"/a": 0, "/b": 0}
    threads = {}
    for path in ("/a", "/b"):
        idents = {ident for _, ident in seen[path]}
        assert len(idents) == 1, "handlers of %s ran in %d threads" % (path, len(idents))
        threads[path] = idents.pop()
    assert threads["/a"] != threads["/b"]
    assert threading.get_ident() not in threads.values()


def test_exception_in_a_handler_is_logged_and_the_connection_goes_on(serve, logged_errors):
    app = WSocketApp()

    def fragile(message, client):
        if message == "boom":
            raise RuntimeError("handler failed on boom")
        client.send("fragile: " + message)

    def steady(message, client):
        client.send("steady: " + message)

    app.onmessage += fragile
    app.onmessage += steady
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("boom")
        assert websocket.recv(timeout=TIMEOUT) == "steady: boom"
        websocket.send("after")
        assert websocket.recv(timeout=TIMEOUT) == "fragile: after"
        assert websocket.recv(timeout=TIMEOUT) == "steady: after"
    failures = [record for record in logged_errors if record.exc_info]
    assert len(failures) == 1
    assert "fragile" in failures[0].getMessage()
    assert str(failures[0].exc_info[1]) == "handler failed on boom"


def test_exception_in_onconnect_is_logged_and_the_connection_goes_on(serve, logged_errors):
    app = WSocketApp()

    def broken(client):
        raise ValueError("onconnect failed")

    app.onconnect += broken
    app.onmessage += lambda message, client: client.send("still here: " + message)
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("x")
        assert websocket.recv(timeout=TIMEOUT) == "still here: x"
    assert [str(record.exc_info[1]) for record in logged_errors if record.exc_info] == [
        "onconnect failed"]


def test_app_tracks_its_clients(serve):
    app = WSocketApp()
    counts = []
    app.onmessage += lambda message, client: client.send(str(len(app.clients)))
    app.onclose += lambda reason, client: counts.append(client in app.clients)
    server = serve(app)
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as one:
        with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as two:
            two.send("count")
            assert two.recv(timeout=TIMEOUT) == "2"
        wait_for(lambda: counts, what="onclose")
        one.send("count")
        assert one.recv(timeout=TIMEOUT) == "1"
    wait_for(lambda: len(counts) == 2, what="the second onclose")
    assert counts == [False, False]  # gone from app.clients before onclose
    assert app.clients == []


# -- onclose exactly once, whatever ended the connection ------------------------------------------

@pytest.fixture
def closing_app(serve):
    """An app recording every onclose; returns (app, server, records)."""
    def start(**options):
        app = WSocketApp(**options)
        records = []

        def on_close(reason, client):
            records.append({"reason": reason, "code": client.close_code,
                            "closed": client.closed, "thread": threading.get_ident()})

        def on_message(message, client):
            if message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                client.close(int(code), reason)
            else:
                client.send(message)

        app.onmessage += on_message
        app.onclose += on_close
        return app, serve(app), records
    return start


def finish(server, records):
    """Stop the server (its connection threads end) and return the only onclose record."""
    wait_for(lambda: records, what="onclose")
    server.stop(timeout=5)
    assert len(records) == 1, records
    assert records[0]["closed"] is True
    return records[0]


def test_onclose_once_when_the_client_closes(closing_app):
    app, server, records = closing_app()
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "hi"
        websocket.close(4321, "client says bye")
    record = finish(server, records)
    assert (record["code"], record["reason"]) == (4321, "client says bye")


def test_onclose_once_when_the_server_side_closes(closing_app):
    app, server, records = closing_app()
    host, port = server.server_address[:2]
    sock, reader, _ = upgrade(host, port)
    try:
        sock.sendall(client_frame(TEXT, "close 4000 kicked out"))
        fin, opcode, payload = reader.read_frame()
        assert (opcode, payload) == (CLOSE, b"\x0f\xa0kicked out")
        sock.sendall(close_frame(4000, b"ok"))
        record = finish(server, records)
    finally:
        sock.close()
    # The peer answered the close: its code and reason are the connection's end.
    assert (record["code"], record["reason"]) == (4000, "ok")


def test_onclose_once_when_the_server_stops(closing_app):
    app, server, records = closing_app()
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=TIMEOUT) == "hi"
        stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
        stopper.start()
        wait_for(lambda: records, what="onclose")
        stopper.join(10)
    record = finish(server, records)
    assert record["code"] == 1001


def test_onclose_once_on_a_protocol_error(closing_app):
    app, server, records = closing_app()
    host, port = server.server_address[:2]
    sock, reader, _ = upgrade(host, port)
    try:
        sock.sendall(b"\x81\x02hi")  # unmasked: a client must mask (RFC 6455 5.1)
        fin, opcode, payload = reader.read_frame()
        assert opcode == CLOSE and payload[:2] == b"\x03\xea"  # 1002
        record = finish(server, records)
    finally:
        sock.close()
    assert record["code"] == 1002
    assert record["reason"] == payload[2:].decode("utf-8")


def test_onclose_once_when_the_connection_drops(closing_app):
    app, server, records = closing_app()
    host, port = server.server_address[:2]
    sock, reader, _ = upgrade(host, port)
    sock.sendall(client_frame(TEXT, "hello"))
    assert reader.read_message() == (TEXT, b"hello")
    sock.close()  # no close frame: the TCP connection just ends
    record = finish(server, records)
    assert (record["code"], record["reason"]) == (1006, "")


def test_onclose_once_on_keepalive_timeout(closing_app):
    app, server, records = closing_app(ping_interval=0.2, ping_timeout=0.3)
    host, port = server.server_address[:2]
    sock, reader, _ = upgrade(host, port)
    try:
        fin, opcode, payload = reader.read_frame()  # a ping we never answer
        assert (opcode, payload) == (0x9, b"keepalive")
        record = finish(server, records)
    finally:
        sock.close()
    assert (record["code"], record["reason"]) == (1006, "keepalive ping timeout")


def test_onclose_once_when_a_handler_fails_and_the_app_closes(closing_app, logged_errors):
    app, server, records = closing_app()

    def explode(message, client):
        if message == "explode":
            raise RuntimeError("exploded")

    app.onmessage += explode
    with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
        websocket.send("explode")
        assert websocket.recv(timeout=TIMEOUT) == "explode"  # the echo handler ran
        websocket.send("close 1000 done")
        with pytest.raises(ConnectionClosed) as ended:
            websocket.recv(timeout=TIMEOUT)
        assert ended.value.rcvd.code == 1000 and ended.value.rcvd.reason == "done"
    assert [str(record.exc_info[1]) for record in logged_errors] == ["exploded"]
    record = finish(server, records)
    assert (record["code"], record["reason"]) == (1000, "done")


# -- the demo --------------------------------------------------------------------------

def test_demo_pushes_the_client_count_to_pages_that_ask(serve):
    server = serve()  # WSocketApp() with nothing attached
    with connect(ws_url(server, "/?clients"), open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as page:
        assert json.loads(page.recv(timeout=TIMEOUT)) == {"clients": 1}
        with connect(ws_url(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as plain:
            assert json.loads(page.recv(timeout=TIMEOUT)) == {"clients": 2}
            plain.send("hello")
            # A client that did not ask gets only its echo.
            assert plain.recv(timeout=TIMEOUT) == "you said: hello"
        assert json.loads(page.recv(timeout=TIMEOUT)) == {"clients": 1}
        page.send('{"clients": 99}')
        assert page.recv(timeout=TIMEOUT) == 'you said: {"clients": 99}'
        page.send(b"\x00\xff")
        assert page.recv(timeout=TIMEOUT) == b"\x00\xff"


def test_demo_page_and_its_head(serve):
    from wsocket import app as app_module
    import os
    with open(os.path.join(os.path.dirname(app_module.__file__), "static", "demo.html"),
              "rb") as file:
        page = file.read()
    server = serve()
    sock = open_connection("127.0.0.1", server.server_port)
    reader = Reader(sock)
    try:
        for path in ("/", "/index.html"):
            sock.sendall(request("GET", path))
            response = reader.read_response()
            assert response.status_line == "HTTP/1.1 200 OK"
            assert response.header("Content-Type") == "text/html; charset=utf-8"
            assert response.header("Content-Length") == str(len(page))
            assert response.body == page
        sock.sendall(request("HEAD", "/"))
        response = reader.read_response("HEAD")
        assert response.header("Content-Length") == str(len(page))
        sock.sendall(request("GET", "/other"))
        assert reader.read_response().status == 404
    finally:
        sock.close()


def test_attaching_any_handler_ends_the_echo_and_the_page(serve):
    app = WSocketApp()
    app.onconnect += lambda client: client.send("welcome")
    server = serve(app)
    host, port = server.server_address[:2]
    sock, reader, _ = upgrade(host, port)
    try:
        assert reader.read_message() == (TEXT, b"welcome")
        sock.sendall(client_frame(TEXT, "hi") + close_frame(1000))
        # No echo of "hi" comes before the answer to our close.
        fin, opcode, payload = reader.read_frame()
        assert (opcode, payload) == (CLOSE, b"\x03\xe8")
    finally:
        sock.close()
    sock = open_connection(host, port)
    try:
        sock.sendall(request("GET", "/"))
        assert Reader(sock).read_response().status == 404
    finally:
        sock.close()
