"""Request middleware of our own (Django's and the libraries' are listed in settings.MIDDLEWARE)."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import resolve


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


class StripeWebhookFastPathMiddleware:
    """Serve Stripe's webhook POSTs without the staff middleware below this one in MIDDLEWARE.

    Sessions, authentication, django-otp, the staff idle timeout, messages, CSRF (the view is
    exempt), clickjacking headers and django-axes do nothing for a machine POST authenticated by
    its signature, but their per-request work was about an eighth of a webhook's CPU
    (bench/profile_webhook.py). Requests under WEBHOOK_PATH_PREFIX are resolved and handed to
    their view directly; everything else goes down the chain. SecurityMiddleware (and WhiteNoise)
    sit above this one, so HTTPS redirects and security headers still apply. Tests go through the
    same middleware, so they exercise the path production serves.
    """

    WEBHOOK_PATH_PREFIX = "/stripe/webhook/"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(self.WEBHOOK_PATH_PREFIX):
            return self.get_response(request)
        match = resolve(request.path_info)  # Http404 becomes Django's 404 response
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
