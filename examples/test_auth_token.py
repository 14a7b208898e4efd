"""Tests of auth_token.py with wsocket's test client: no server process, no port.

    pytest test_auth_token.py          # from this folder, next to auth_token.py

The app runs in the test's own process, over a real socket pair, through
wsocket's own HTTP server code and a real handshake.
"""

import pytest

from wsocket import InvalidStatus
from wsocket.testing import TestClient

from auth_token import app


@pytest.fixture
def client():
    with TestClient(app) as client:  # the end of the block closes what is still open
        yield client


def test_a_wrong_token_is_refused_before_the_101(client):
    with pytest.raises(InvalidStatus) as refused:
        client.websocket("/ws?token=wrong")
    assert refused.value.status == 401
    assert ("WWW-Authenticate", "Bearer") in refused.value.headers
    assert refused.value.body == b"unknown token\n"


def test_a_token_in_the_query(client):
    with client.websocket("/ws?token=abc123") as ws:
        assert ws.receive() == "hello alice"
        ws.send("hi")
        assert ws.receive() == "alice: hi"


def test_a_token_as_a_subprotocol(client):
    with client.websocket("/ws", protocols=["token.def456"]) as ws:
        assert ws.protocol == "token.def456"  # the 101 named the offered subprotocol
        assert ws.receive() == "hello bob"


def test_plain_http_needs_no_token(client):
    page = client.get("/")  # no route: the event app answers plain HTTP with a 404
    assert page.status == 404
