"""examples/nginx/wsocket.conf, run by Debian's nginx in front of gunicorn (gthread) and uWSGI.

nginx terminates TLS (wss://) and also takes plain ws://; the app behind it
runs tests.matrix_app. The config is used as shipped, with only its ports
and certificate paths replaced.
"""

import asyncio
import contextlib
import os
import shutil
import ssl
import urllib.request

import pytest
import trustme
from websockets.asyncio.client import connect as asyncio_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests import matrix_app
from tests.netutil import ROOT
from tests.serverproc import (
    assert_clean_end, free_port, python, recording_socket, start_server, uwsgi,
)

TIMEOUT = 20.0
CONFIG = ROOT / "examples" / "nginx" / "wsocket.conf"
HOSTNAME = "example.com"

MAIN_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/wsocket.conf;
}}
"""


@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


def nginx_binary():
    """Debian's nginx; WSOCKET_TEST_NGINX names another (tests/test_fixtures.py: a missing one)."""
    return os.environ.get("WSOCKET_TEST_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


# The app servers behind the shipped config, each on 127.0.0.1:{port}.
APP_SERVERS = {
    "gunicorn": python("-m", "gunicorn", "-k", "gthread", "--threads", "20",
                       "-b", "127.0.0.1:{port}", "tests.matrix_app:app"),
    "uwsgi": uwsgi("--http-socket", "127.0.0.1:{port}", "--threads", "20"),
}


@pytest.fixture(scope="module", params=sorted(APP_SERVERS))
def nginx(request, tmp_path_factory, certificate_authority):
    tmp = tmp_path_factory.mktemp("nginx")
    # Both servers stop however the fixture ends: nginx missing must not leave gunicorn.
    with contextlib.ExitStack() as started:
        app = started.enter_context(start_server(
            request.param, APP_SERVERS[request.param], tmp / "app-stderr.txt",
            env={"HOME": str(tmp)}))
        certificate = certificate_authority.issue_cert(HOSTNAME)
        certificate.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
        for pem in certificate.cert_chain_pems[1:]:
            pem.write_to_path(str(tmp / "cert.pem"), append=True)
        certificate.private_key_pem.write_to_path(str(tmp / "key.pem"))
        plain_port, tls_port = free_port(), free_port()
        site = CONFIG.read_text()
        for shipped, replacement in [
                ("server 127.0.0.1:8000;", "server 127.0.0.1:%d;" % app.port),
                ("listen 80;", "listen 127.0.0.1:%d;" % plain_port),
                ("listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % tls_port),
                ("/etc/ssl/certs/example.com.pem", str(tmp / "cert.pem")),
                ("/etc/ssl/private/example.com.key", str(tmp / "key.pem"))]:
            assert site.count(shipped) == 1, shipped
            site = site.replace(shipped, replacement)
        (tmp / "wsocket.conf").write_text(site)
        (tmp / "nginx.conf").write_text(MAIN_CONFIG.format(tmp=tmp))
        binary = nginx_binary()
        assert os.path.exists(binary), "nginx is missing (%s): ./test.sh installs it" % binary
        proxy = started.enter_context(start_server(
            "nginx", [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                      "-e", str(tmp / "error.log")],
            tmp / "nginx-stderr.txt", port=plain_port))
        proxy.tls_port = tls_port
        proxy.app = app
        proxy.error_log = tmp / "error.log"
        yield proxy


@pytest.fixture
def quiet(nginx):
    yield nginx
    nginx.app.assert_no_errors()
    assert nginx.error_log.read_text() == "", nginx.error_log.read_text()


def test_wss_through_nginx_reaches_the_app_with_compression_and_subprotocol(
        quiet, certificate_authority):
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    url = "wss://127.0.0.1:%d/describe" % quiet.tls_port
    message = "over TLS " * 100000

    async def talk():  # websockets' asyncio client: its sync one races OpenSSL (tests/tlspeers.py)
        async with asyncio_connect(url, ssl=context, server_hostname=HOSTNAME,
                                   subprotocols=["chat"], open_timeout=TIMEOUT,
                                   close_timeout=TIMEOUT,
                                   max_size=matrix_app.MAX_MESSAGE_SIZE) as connection:
            assert connection.subprotocol == "chat"
            assert await asyncio.wait_for(connection.recv(), TIMEOUT) == (
                "protocol=chat compress=True")
            await connection.send(message)
            assert await asyncio.wait_for(connection.recv(), TIMEOUT) == message
            await connection.close()
        return connection.close_code

    assert asyncio.run(talk()) == 1000


def test_close_from_the_app_passes_through_and_nothing_follows_it(quiet):
    sock = recording_socket(quiet.port)
    with connect("ws://127.0.0.1:%d/close" % quiet.port, sock=sock,
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as connection:
        assert connection.recv(timeout=TIMEOUT) == "closing"
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=TIMEOUT)
        assert closed.value.rcvd.code == matrix_app.CLOSE_CODE
        assert closed.value.rcvd.reason == matrix_app.CLOSE_REASON
        assert_clean_end(connection, sock)


def test_echo_and_client_close_through_nginx(quiet):
    sock = recording_socket(quiet.port)
    with connect("ws://127.0.0.1:%d/" % quiet.port, sock=sock,
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as connection:
        connection.send(b"\x00" * 70000)
        assert connection.recv(timeout=TIMEOUT) == b"\x00" * 70000
        assert_clean_end(connection, sock)
    assert connection.close_code == 1000


def test_plain_http_through_nginx(quiet):
    with urllib.request.urlopen("http://127.0.0.1:%d/page" % quiet.port,
                                timeout=TIMEOUT) as response:
        assert response.read() == b"plain HTTP GET /page"
