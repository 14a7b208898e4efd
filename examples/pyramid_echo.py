"""Pyramid with a WebSocket echo at /ws.

    gunicorn -k gevent pyramid_echo:app                   # a greenlet per connection
    gunicorn -k gthread --threads 100 pyramid_echo:app    # a thread per connection

The view returns ``request.response``, as Pyramid wants a response object;
wsocket discards it (the 101 went out already).
"""

from pyramid.config import Configurator
from pyramid.response import Response

from wsocket import WSocketApp


def index(request):
    return Response("Pyramid here: open a WebSocket to /ws\n")


def echo(request):
    websocket = request.environ.get("wsgi.websocket")
    if websocket is None:
        return Response("this URL speaks WebSocket\n", status=400)
    for message in websocket:
        websocket.send(message)
    return request.response


with Configurator() as config:
    config.add_route("index", "/")
    config.add_view(index, route_name="index")
    config.add_route("echo", "/ws")
    config.add_view(echo, route_name="echo")
    app = WSocketApp(config.make_wsgi_app())
