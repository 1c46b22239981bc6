"""Django glue: configure codejail from ``settings.CODE_JAIL`` at start-up.

Add ``codejail.django_integration.ConfigureCodeJailMiddleware`` to
``MIDDLEWARE``: it applies the settings once (see
``codejail.django_integration_utils``) and takes itself out of the chain.
Django is imported when this module is, never by the rest of the package.
"""

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.utils.deprecation import MiddlewareMixin

from . import django_integration_utils


class ConfigureCodeJailMiddleware(MiddlewareMixin):
    """Applies ``settings.CODE_JAIL`` when Django loads its middleware,
    then raises MiddlewareNotUsed."""

    def __init__(self, *args, **kwargs):
        django_integration_utils.apply_django_settings(settings.CODE_JAIL)
        super().__init__(*args, **kwargs)
        raise MiddlewareNotUsed
