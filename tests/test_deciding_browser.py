"""A refusal before the 101, as a browser sees it: headless Chromium (Debian's), Playwright.

Browsers tell a page nothing of a refused handshake but ``error``, then
``close`` with 1006; the server's log has the status.
"""

import re

from tests.test_demo_browser import browser, context  # noqa: F401 (fixtures)

OPEN_AND_LISTEN = """url => new Promise(resolve => {
    const events = [];
    const socket = new WebSocket(url);
    socket.onopen = () => events.push("open");
    socket.onmessage = event => { events.push("message " + event.data); socket.close(1000); };
    socket.onerror = () => events.push("error");
    socket.onclose = event => { events.push("close " + event.code); resolve(events); };
})"""


def test_a_refused_websocket_fires_error_then_close_1006_and_the_server_logs_403(
        wsocket_process, context):  # noqa: F811
    server = wsocket_process("tests.deciding_apps:app", "--port", "0")
    page = context.new_page()
    page.goto(server.url)
    base = server.ws_url + "ws"
    assert page.evaluate(OPEN_AND_LISTEN, base + "?token=bad") == ["error", "close 1006"]
    assert page.evaluate(OPEN_AND_LISTEN, base + "?token=good") == [
        "open", "message hello alice", "close 1000"]
    assert server.terminate() == 0
    log = server.stderr()
    assert re.search(r'"GET /ws\?token=bad HTTP/1.1" 403 ', log), log
    assert "Traceback" not in log
