"""Django's WSGI application, wrapped by wsocket: views get ``request.environ["wsgi.websocket"]``.

    gunicorn -k gthread --threads 100 echosite.wsgi       # from examples/django_echo
    wsocket echosite.wsgi:application                     # wsocket's own server
"""

import os

from django.core.wsgi import get_wsgi_application

from wsocket import WSocketApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echosite.settings")

application = WSocketApp(get_wsgi_application())
