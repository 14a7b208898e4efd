from django.http import HttpResponse, HttpResponseBadRequest


def index(request):
    return HttpResponse("Django here: open a WebSocket to /ws\n", content_type="text/plain")


def echo(request):
    websocket = request.environ.get("wsgi.websocket")
    if websocket is None:
        return HttpResponseBadRequest("this URL speaks WebSocket\n")
    for message in websocket:
        websocket.send(message)
    # Django wants a response from every view; wsocket discards it (the 101
    # went out already), and Django runs its request_finished signal as usual.
    return HttpResponse()
