#!/usr/bin/env python
"""Django's manage.py. ``runserver`` cannot hand its socket over to a WebSocket:
run ``gunicorn -k gthread --threads 100 echosite.wsgi`` or
``wsocket echosite.wsgi:application`` instead (from this folder)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echosite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
