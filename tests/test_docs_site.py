"""The documentation site: built in strict mode, then looked at in Chromium.

``mkdocs build --strict`` fails on any warning: a broken link, a reference
to a name no page documents, an included example that is missing, a
docstring that does not match its signature. The built site is served on
127.0.0.1 and its home page, WebSocket page and testing page are opened at desktop and
phone width; the screenshots are kept in reports/docs-screenshots/
(git-ignored) for a person to look at.
"""

import functools
import html
import http.server
import os
import re
import subprocess
import sys
import threading

import griffe
import pytest
from playwright.sync_api import expect, sync_playwright

import wsocket
from tests.netutil import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "reports" / "docs-screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built from the repository, as ``mkdocs build --strict`` makes it."""
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return folder


def page_text(site, name):
    return (site / name / "index.html").read_text(encoding="utf-8")


def test_every_public_name_has_its_reference(site):
    pages = {path: path.read_text(encoding="utf-8") for path in site.rglob("*.html")}
    for name in wsocket.__all__:
        anchor = 'id="wsocket.%s"' % name
        where = [path for path, text in pages.items() if anchor in text]
        assert len(where) == 1, "wsocket.%s: documented on %s" % (name, where)
    reference = page_text(site, "reference")
    for name in wsocket.__all__:  # the generated table links each name
        assert re.search(r'<a [^>]*href="[^"]*#wsocket\.%s"' % name, reference), name


def test_the_websocket_page_is_complete(site):
    text = page_text(site, "websocket")
    for member in ("receive", "send", "close", "ping", "handle_ping", "handle_pong",
                   "handle_close", "__iter__", "__enter__", "__exit__"):
        assert 'id="wsocket.WebSocket.%s"' % member in text, member
    for error in ("WebSocketError", "ConnectionClosed", "ProtocolError",
                  "FrameTooLargeException"):
        assert 'id="wsocket.%s"' % error in text, error
    # The seed's attributes, each in the reference's table.
    for attribute in ("path", "origin", "protocol", "version", "do_compress", "environ",
                      "closed", "close_code", "close_reason", "logger"):
        assert re.search(r"<code>%s</code>" % attribute, text), attribute
    # What receive() returns and raises, from its docstring.
    unescaped = html.unescape(re.sub(r"<[^>]+>", "", text))
    assert "The peer closed the connection" in unescaped
    assert "class LatencyWebSocket(WebSocket):" in unescaped  # the example, included


def test_generated_command_line_help(site):
    server = html.unescape(page_text(site, "server"))
    for option in ("--max-connections", "--request-timeout", "--hub URL", "--certfile"):
        assert option in server, option
    client = html.unescape(page_text(site, "client"))
    assert "usage: wsocket connect" in client and "--protocol" in client


def test_docstrings_say_what_they_return_and_raise():
    package = griffe.load("wsocket", search_paths=[str(ROOT / "src")],
                          docstring_parser="google")
    # name: the sections its docstring must have
    expected = {
        "connect": {"returns", "raises"},
        "run": {"returns", "raises"},
        "make_server": {"returns", "raises"},
        "WebSocket.receive": {"returns", "raises"},
        "WebSocket.send": {"raises"},
        "WebSocket.close": {"raises"},
        "WebSocket.ping": {"raises"},
        "WebSocket.__iter__": {"yields"},
        "WSocketApp": {"raises"},
        "WSocketApp.route": {"returns", "raises"},
        "Hub": {"raises"},
        "Hub.broadcast": {"returns", "raises"},
        "Hub.join": {"returns", "raises"},
        "Hub.clients": {"returns"},
        "Hub.rooms": {"returns"},
        "Hub.token": {"returns", "raises"},
        "Event": {"raises"},
        "Response": {"raises"},
        "ThreadingWSGIServer": {"raises"},
    }
    for name in wsocket.__all__:
        docstring = package[name].docstring
        assert docstring is not None and docstring.value.strip(), name + " has no docstring"
    for name, sections in expected.items():
        docstring = package[name].docstring
        found = {section.kind.value for section in docstring.parsed}
        assert sections <= found, "%s: no %s section" % (name, sections - found)


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on 127.0.0.1, as a reader's browser gets it."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url, width_name):
    width, height = WIDTHS[width_name]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    return context, page, requested


def check_reads_on_its_own(page, requested, served):
    # Nothing from elsewhere (no web fonts, no scripts from a CDN), and no
    # sideways scrolling at this width.
    assert [url for url in requested if not url.startswith(served)] == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def save(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / ("%s.png" % name)
    page.screenshot(path=str(path), full_page=False)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize("width_name", list(WIDTHS))
def test_home_page_in_chromium(browser, served, width_name):
    context, page, requested = open_page(browser, served, width_name)
    try:
        expect(page).to_have_title("wsocket")
        expect(page.locator("article h1")).to_have_text(re.compile("^wsocket"))
        expect(page.locator("article")).to_contain_text("WebSockets for the WSGI world")
        parts = page.locator("article table").first
        expect(parts.get_by_role("link", name="The WebSocket object")).to_be_visible()
        check_reads_on_its_own(page, requested, served)
        save(page, "home-%s" % width_name)
    finally:
        context.close()


@pytest.mark.parametrize("width_name", list(WIDTHS))
def test_websocket_page_in_chromium(browser, served, width_name):
    context, page, requested = open_page(browser, served + "websocket/", width_name)
    try:
        expect(page).to_have_title("The WebSocket object - wsocket")
        expect(page.locator("article h1")).to_have_text(re.compile("^The WebSocket object"))
        reference = page.locator("[id='wsocket.WebSocket']")
        expect(reference).to_contain_text("WebSocket")
        for method in ("receive", "send", "close"):
            heading = page.locator("[id='wsocket.WebSocket.%s']" % method)
            expect(heading).to_contain_text(method)
        save(page, "websocket-%s" % width_name)
        # The reference of receive(), as a reader scrolls to it.
        page.locator("[id='wsocket.WebSocket.receive']").scroll_into_view_if_needed()
        expect(page.locator("[id='wsocket.WebSocket.receive']")).to_be_in_viewport()
        check_reads_on_its_own(page, requested, served)
        save(page, "websocket-receive-%s" % width_name)
    finally:
        context.close()


def test_readme_links_into_the_site(site):
    """README's relative links (docs/*.md#anchor, examples/) lead somewhere, on GitHub and the site."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert "docs/testing.md" in local and "docs/security.md#authentication" in local
    for link in local:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if path.startswith("docs/") and path.endswith(".md"):
            page = path[len("docs/"):-len(".md")]
            text = (site / ("" if page == "index" else page) / "index.html").read_text(
                encoding="utf-8")
            if anchor:
                assert 'id="%s"' % anchor in text, link


@pytest.mark.parametrize("width_name", list(WIDTHS))
def test_testing_page_in_chromium(browser, served, width_name):
    context, page, requested = open_page(browser, served + "testing/", width_name)
    try:
        expect(page).to_have_title("Testing your app - wsocket")
        expect(page.locator("article h1")).to_have_text(re.compile("^Testing your app"))
        # The pytest example, included from examples/, and the reference.
        expect(page.locator("article")).to_contain_text("from auth_token import app")
        expect(page.locator("[id='wsocket.testing.TestClient.websocket']")).to_contain_text(
            "websocket")
        check_reads_on_its_own(page, requested, served)
        save(page, "testing-%s" % width_name)
    finally:
        context.close()
