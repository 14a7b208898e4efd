"""The least settings a Django project with a WebSocket view needs."""

SECRET_KEY = "only-for-this-example"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "echosite.urls"
WSGI_APPLICATION = "echosite.wsgi.application"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
