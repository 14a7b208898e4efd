"""The demo in a real browser: headless Chromium (Debian's), driven by Playwright.

The server is ``python -m wsocket`` with no app, the page is the one it
serves at ``/``, and everything happens through the page itself: its input,
its Send button, what it shows. Screenshots go to each test's tmp_path;
the layout test's, at a phone and a desktop width, to reports/demo/ in the
checkout (git ignores it), where they are kept to be looked at.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import STOP_TIMEOUT, read_banner
from tests.netutil import ROOT
from tests.serverproc import stop_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 15_000  # for anything the page does; the longest reconnection delay is 4 s


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 900, "height": 700},
                                  ignore_https_errors=True)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    yield context
    context.close()


def open_demo(context, url):
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#state")).to_have_attribute("data-state", "open")
    expect(page.locator("#state-text")).to_have_text("connected")
    return page


def send_through_the_page(page, text):
    page.locator("#message").fill(text)
    page.locator("#send").click()
    expect(page.locator(".msg.sent").last).to_have_text(text)
    expect(page.locator(".msg.received").last).to_have_text("you said: " + text)
    expect(page.locator("#message")).to_have_value("")


def save_screenshot(page, path):
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_demo_echoes_what_a_person_types_and_counts_clients(wsocket_process, context,
                                                            tmp_path):
    server = wsocket_process("--port", "0")
    page = open_demo(context, server.url)
    expect(page).to_have_title("wsocket demo")
    expect(page.locator("#clients")).to_have_text("1 client connected")
    send_through_the_page(page, "Hello from Chromium!")
    page.locator("#message").fill("Pressing Enter works too")
    page.locator("#message").press("Enter")
    expect(page.locator(".msg.received").last).to_have_text(
        "you said: Pressing Enter works too")

    second = open_demo(context, server.url)
    expect(page.locator("#clients")).to_have_text("2 clients connected")
    expect(second.locator("#clients")).to_have_text("2 clients connected")
    expect(page.locator("#clients")).to_have_attribute("data-count", "2")
    send_through_the_page(second, "second tab")
    # Each tab sees only its own echo.
    expect(page.locator(".msg.received")).to_have_count(2)
    save_screenshot(page, tmp_path / "demo.png")
    # The second tab, too, sees the count change as others come and go.
    third = open_demo(context, server.url)
    expect(second.locator("#clients")).to_have_text("3 clients connected")
    third.close()
    expect(second.locator("#clients")).to_have_text("2 clients connected")
    second.close()
    expect(page.locator("#clients")).to_have_text("1 client connected")
    # Messages are text, never markup.
    send_through_the_page(page, "<b>not bold</b>")
    expect(page.locator(".msg.received b")).to_have_count(0)


def test_demo_reconnects_after_the_server_restarts(wsocket_process, context, tmp_path):
    server = wsocket_process("--port", "0")
    page = open_demo(context, server.url)
    send_through_the_page(page, "before the restart")
    assert server.terminate() == 0
    expect(page.locator("#state")).to_have_attribute("data-state", "closed")
    expect(page.locator("#state-text")).to_contain_text("disconnected")
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#clients")).to_have_text("\u2013 clients")
    save_screenshot(page, tmp_path / "disconnected.png")
    restarted = wsocket_process("--port", str(server.port))
    assert restarted.port == server.port
    expect(page.locator("#state")).to_have_attribute("data-state", "open")
    expect(page.locator("#clients")).to_have_text("1 client connected")
    send_through_the_page(page, "after the restart")
    expect(page.locator(".msg.note")).to_have_text([
        "connected to ws://127.0.0.1:%d/" % server.port,
        "connection lost; reconnecting\u2026",
        "connected to ws://127.0.0.1:%d/" % server.port,
    ])


def test_demo_works_over_wss(wsocket_process, context, certificate, tmp_path):
    certfile, keyfile = certificate["certfile"], certificate["keyfile"]
    server = wsocket_process("--port", "0", "--certfile", certfile, "--keyfile", keyfile)
    assert server.url.startswith("https://127.0.0.1:")
    page = open_demo(context, server.url)
    expect(page.locator("#endpoint")).to_have_text("wss://127.0.0.1:%d/?clients" % server.port)
    expect(page.locator("#clients")).to_have_text("1 client connected")
    send_through_the_page(page, "over TLS")
    save_screenshot(page, tmp_path / "demo-wss.png")


def test_chromium_is_debians(browser):
    """The browser really is the system's Chromium, not a downloaded one."""
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    assert version.startswith("Chromium ")
    assert browser.version.split(".")[0] in version


@pytest.fixture
def bare_wsocket(tmp_path):
    """``wsocket`` with no arguments, as README's first command ends: the demo on port 8080.

    The port is fixed, so a run of this same test elsewhere on the machine may
    hold it for a moment: starting is retried for up to PORT_WAIT seconds.
    """
    script = Path(sys.executable).parent / "wsocket"
    assert script.is_file(), "the wsocket command is not installed next to %s" % sys.executable
    stderr_path = tmp_path / "wsocket-stderr.txt"
    deadline = time.monotonic() + PORT_WAIT
    while True:
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen([str(script)], cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=stderr,
                                    env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            banner = read_banner(proc)
            break
        except RuntimeError:  # it exited: the port was taken?
            proc.stdout.close()
            error = stderr_path.read_text()
            if "port 8080" not in error or time.monotonic() > deadline:
                raise AssertionError("wsocket without arguments failed: %s" % error)
            time.sleep(0.5)
        except BaseException:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()
            raise
    yield proc, banner
    stop_process(proc, STOP_TIMEOUT)
    proc.stdout.close()


PORT_WAIT = 30


def test_wsocket_without_arguments_serves_the_demo_on_8080(bare_wsocket, context, tmp_path):
    proc, banner = bare_wsocket
    assert banner == "wsocket serving on http://127.0.0.1:8080/ (Ctrl-C to stop)"
    page = open_demo(context, "http://127.0.0.1:8080/")
    send_through_the_page(page, "typed into the demo of the bare command")
    save_screenshot(page, tmp_path / "wsocket-8080.png")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(STOP_TIMEOUT) == 0


def chat_name(page):
    expect(page.locator("#name")).to_have_text(re.compile(r"^you are guest-[0-9a-f]{4}$"))
    return page.locator("#name").inner_text()[len("you are "):]


def test_demo_chat_mode_broadcasts_to_everyone_in_the_chat(wsocket_process, context, tmp_path):
    server = wsocket_process("--port", "0")
    alice = open_demo(context, server.url + "?chat")
    expect(alice.locator("#mode-chat")).to_have_attribute("aria-pressed", "true")
    expect(alice.locator("#endpoint")).to_have_text(
        "ws://127.0.0.1:%d/?clients&chat" % server.port)
    alice_name = chat_name(alice)
    # Bob opens the plain demo and switches to the chat with the toggle.
    bob = open_demo(context, server.url)
    bob.locator("#mode-chat").click()
    expect(bob).to_have_url(server.url + "?chat")
    bob_name = chat_name(bob)
    assert bob_name != alice_name
    expect(alice.locator(".msg.note").last).to_have_text(bob_name + " joined")
    echo = open_demo(context, server.url)  # stays in echo mode

    bob.locator("#message").fill("hello, chat!")
    bob.locator("#send").click()
    expect(bob.locator(".msg.sent").last).to_have_text("hello, chat!")
    expect(alice.locator(".msg.received .who").last).to_have_text(bob_name)
    expect(alice.locator(".msg.received .text").last).to_have_text("hello, chat!")
    alice.locator("#message").fill("<i>hi</i> bob")
    alice.locator("#message").press("Enter")
    expect(alice.locator(".msg.sent").last).to_have_text("<i>hi</i> bob")
    expect(bob.locator(".msg.received .text").last).to_have_text("<i>hi</i> bob")
    expect(bob.locator(".msg.received i")).to_have_count(0)
    # The chat counts the two in the chat; the echo page counts everyone.
    expect(alice.locator("#clients")).to_have_text("2 in the chat")
    expect(bob.locator("#clients")).to_have_text("2 in the chat")
    expect(echo.locator("#clients")).to_have_text("3 clients connected")
    # The echo page saw none of it and still echoes.
    send_through_the_page(echo, "just me")
    expect(echo.locator(".msg.received")).to_have_count(1)
    save_screenshot(alice, tmp_path / "chat.png")

    bob.close()
    expect(alice.locator(".msg.note").last).to_have_text(bob_name + " left")
    # Back to the echo: the chat no longer reaches this page.
    alice.locator("#mode-echo").click()
    expect(alice).to_have_url(server.url)
    send_through_the_page(alice, "echo again")


# -- the layout, at a phone's width and a desktop's --------------------------------------

SCREENSHOTS = ROOT / "reports" / "demo"
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}
HEADER_PARTS = [".mark", "h1", "#subtitle", ".modes", "#state", "#clients"]
FORM_PARTS = ["#message", "#send"]
MEASURE = """(selectors) => {
  const boxes = {};
  for (const selector of selectors) {
    const element = document.querySelector(selector);
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    boxes[selector] = {left: box.left, top: box.top, right: box.right, bottom: box.bottom,
                       width: box.width, height: box.height,
                       scrollWidth: element.scrollWidth, clientWidth: element.clientWidth,
                       lineHeight: parseFloat(style.lineHeight)};
  }
  return {boxes: boxes, viewport: document.documentElement.clientWidth,
          pageWidth: document.documentElement.scrollWidth};
}"""


def _overlap(first, second):
    return (first["left"] < second["right"] - 0.5 and second["left"] < first["right"] - 0.5
            and first["top"] < second["bottom"] - 0.5 and second["top"] < first["bottom"] - 0.5)


def assert_layout_holds(page):
    """Nothing cut, nothing overlapping, the title on one line, the subtitle on two at most."""
    parts = HEADER_PARTS + FORM_PARTS + ["main", "#log", "footer"]
    measured = page.evaluate(MEASURE, parts)
    boxes, viewport = measured["boxes"], measured["viewport"]
    assert measured["pageWidth"] <= viewport, "the page scrolls sideways: %r" % measured
    main = boxes["main"]
    for name in parts:
        box = boxes[name]
        assert box["width"] > 0 and box["height"] > 0, "%s is not shown: %r" % (name, box)
        assert box["left"] >= 0 and box["right"] <= viewport, "%s is cut: %r" % (name, box)
        if name != "main":
            assert main["left"] <= box["left"] and box["right"] <= main["right"], (name, box)
        if box["clientWidth"]:  # its text fits its box
            assert box["scrollWidth"] <= box["clientWidth"] + 1, "%s is cut: %r" % (name, box)
    for group in (HEADER_PARTS, FORM_PARTS):
        for index, first in enumerate(group):
            for second in group[index + 1:]:
                assert not _overlap(boxes[first], boxes[second]), (
                    "%s overlaps %s: %r %r" % (first, second, boxes[first], boxes[second]))
    title, subtitle = boxes["h1"], boxes["#subtitle"]
    assert title["height"] < 1.5 * title["lineHeight"], "the title wraps: %r" % title
    assert subtitle["height"] < 2.5 * subtitle["lineHeight"], "the subtitle: %r" % subtitle


@pytest.mark.parametrize("width_name", list(WIDTHS))
def test_demo_layout_holds_and_the_toggle_stays_put(wsocket_process, browser, width_name):
    width, height = WIDTHS[width_name]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    failed = []  # every response of 400 or more, /favicon.ico's included
    console_errors = []
    try:
        server = wsocket_process("--port", "0")
        page = context.new_page()
        page.on("response", lambda response: response.status >= 400 and failed.append(
            "%d %s" % (response.status, response.url)))
        page.on("console", lambda message: message.type == "error" and console_errors.append(
            message.text))
        page.goto(server.url)
        expect(page.locator("#state-text")).to_have_text("connected")
        expect(page.locator("#clients")).to_have_text("1 client connected")
        send_through_the_page(page, "Hello from a %d px wide window" % width)
        assert_layout_holds(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        save_screenshot(page, SCREENSHOTS / ("echo-%s.png" % width_name))
        toggle = page.locator(".modes").bounding_box()

        page.locator("#mode-chat").click()
        expect(page.locator("#clients")).to_have_text("1 in the chat")
        page.locator("#message").fill("a chat message long enough to wrap on a phone's screen")
        page.locator("#send").click()
        expect(page.locator(".msg.sent").last).to_contain_text("long enough")
        assert_layout_holds(page)
        save_screenshot(page, SCREENSHOTS / ("chat-%s.png" % width_name))
        assert page.locator(".modes").bounding_box() == toggle, "the toggle moved"

        # The longest status text: the toggle still does not move.
        assert server.terminate() == 0
        expect(page.locator("#state-text")).to_contain_text("disconnected, retry in")
        expect(page.locator("#clients")).to_have_text("\u2013 clients")
        assert_layout_holds(page)
        save_screenshot(page, SCREENSHOTS / ("disconnected-%s.png" % width_name))
        assert page.locator(".modes").bounding_box() == toggle, "the toggle moved"
    finally:
        context.close()
    assert failed == [], "failed requests: %s" % failed
    # The page's WebSocket, refused while the server is down, is the only error allowed.
    assert [text for text in console_errors if "WebSocket connection" not in text] == []
