"""Request middleware of our own (Django's and the libraries' are listed in settings.MIDDLEWARE)."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class StaffSessionIdleTimeoutMiddleware:
    """Staff sessions end after STAFF_SESSION_IDLE_SECONDS without a request; clients keep Django's
    SESSION_COOKIE_AGE. Admin and portal share one session cookie, so the expiry is set per user
    rather than for the whole site; setting it on each staff request makes the timeout rolling.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_staff:
            request.session.set_expiry(settings.STAFF_SESSION_IDLE_SECONDS)
        return response
