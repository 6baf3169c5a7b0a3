"""How django-axes reads the username of a sign-in attempt (settings.AXES_USERNAME_CALLABLE)."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

# axes keeps it in AccessAttempt.username, a varchar(255). Django's login forms do not enforce
# their username max_length before authenticating, so a longer one made axes' INSERT fail (500).
USERNAME_MAX_LENGTH = 255


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """axes' own choice (the credentials, else the POST), cut to what axes can store."""
    source = credentials or getattr(request, "data", request.POST)
    username = source.get(settings.AXES_USERNAME_FORM_FIELD)
    return None if username is None else str(username)[:USERNAME_MAX_LENGTH]
