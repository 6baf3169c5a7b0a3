from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from crm.webhooks import StripeWebhookView


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers (and the trivial baseline of bench/webhook_ingest.py)."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    # Same path and name as dj-stripe's own view, which ours extends (see crm/webhooks.py).
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("admin/", admin.site.urls),
    path("portal/", include("provisioning.urls")),
]
