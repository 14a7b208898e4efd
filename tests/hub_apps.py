"""An event app driven by JSON commands, for the hub tests: ``tests.hub_apps:app``.

Each text message is one command; the app answers commands that change
something with a reply, so that a test knows they took effect:

- ``{"join": ROOM}`` -> ``{"joined": ROOM}``; ``{"leave": ROOM or null}`` -> ``{"left": ...}``
- ``{"say": TEXT}`` or ``{"say_b64": B64}`` (sent as binary unless
  ``"binary": false``): a broadcast, to ``"room"`` if given, without the
  sender when ``"exclude_me"``, without the clients whose tokens are in
  ``"exclude"``; no reply (the sender gets the broadcast like anyone else)
- ``{"count": ROOM or null}`` -> ``{"count": N}`` (this process's clients)
- ``{"rooms": true}`` -> ``{"rooms": [...]}``; ``{"token": true}`` -> ``{"token": ...}``

A room given as ``{"b64": ...}`` is a bytes name. Importing this module
raises the open-file limit to its hard limit (a test connects 1,000 clients).
"""

import base64
import json
import resource

from wsocket import WSocketApp


def raise_open_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


raise_open_file_limit()


def room_from_json(value):
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def room_to_json(room):
    if isinstance(room, bytes):
        return {"b64": base64.b64encode(room).decode("ascii")}
    return room


def make_app(**options):
    app = WSocketApp(**options)
    hub = app.hub

    def command(message, client):
        if not isinstance(message, str):
            client.send(message)
            return
        request = json.loads(message)
        if "join" in request:
            hub.join(client, room_from_json(request["join"]))
            client.send(json.dumps({"joined": request["join"]}))
        elif "leave" in request:
            room = request["leave"]
            hub.leave(client, None if room is None else room_from_json(room))
            client.send(json.dumps({"left": room}))
        elif "say" in request or "say_b64" in request:
            if "say" in request:
                payload = request["say"]
            else:
                payload = base64.b64decode(request["say_b64"])
            exclude = list(request.get("exclude", []))
            if request.get("exclude_me"):
                exclude.append(client)
            room = request.get("room")
            hub.broadcast(payload, room=None if room is None else room_from_json(room),
                          exclude=exclude or None, binary=request.get("binary"))
        elif "count" in request:
            room = request["count"]
            count = len(hub.clients(None if room is None else room_from_json(room)))
            client.send(json.dumps({"count": count}))
        elif "rooms" in request:
            client.send(json.dumps({"rooms": sorted((room_to_json(room) for room in
                                                     hub.rooms(client)), key=repr)}))
        elif "token" in request:
            client.send(json.dumps({"token": hub.token(client)}))
        else:
            client.send(json.dumps({"error": "unknown command"}))

    app.onmessage = command
    return app


app = make_app()
# For raw clients that never answer a ping: on a loaded machine, connecting
# 1,000 of them can take longer than the ping interval, and a keepalive ping
# would then come before the message a test waits for.
app_without_keepalive = make_app(ping_interval=None, hub="memory://")
