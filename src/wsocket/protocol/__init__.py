"""The sans-I/O protocol core: no socket, thread or clock in here.

``frames`` reads and writes frames, ``connection`` is the state machine
over them (with the ``Side`` and ``State`` enums), ``codes`` the close codes
(``CloseCode``), ``deflate`` is permessage-deflate and ``handshake`` the
opening handshake. The blocking layer (``wsocket.websocket``) sits on top.
"""
