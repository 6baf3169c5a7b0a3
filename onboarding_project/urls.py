from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from stripe_events.views import StripeWebhookView


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers (and the trivial baseline of bench/webhook_ingest.py)."""
    return HttpResponse("ok", content_type="text/plain")


# dj-stripe's URL name for its webhook view, pointing at ours (which extends it, see stripe_events/views.py),
# so what reverses it (dj-stripe's `stripe_listen` command, its endpoint forms) gets our path.
djstripe_urls = (
    [path("webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="djstripe_webhook_by_uuid")],
    "djstripe",
)

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include(djstripe_urls)),
    path("admin/", admin.site.urls),
    path("portal/", include("provisioning.urls")),
]
