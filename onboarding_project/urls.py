from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from provisioning.views import provisioning_callback
from stripe_events.views import StripeWebhookView

from .health import healthz, readyz
from .staff_otp import otp_setup

# dj-stripe's URL name for its webhook view, pointing at ours (which extends it, see stripe_events/views.py),
# so what reverses it (dj-stripe's `stripe_listen` command, its endpoint forms) gets our path.
djstripe_urls = (
    [path("webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="djstripe_webhook_by_uuid")],
    "djstripe",
)

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("readyz/", readyz, name="readyz"),
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include(djstripe_urls)),
    path("admin/two-factor/", otp_setup, name="otp_setup"),
    path("admin/", admin.site.urls),
    path("portal/", include("provisioning.urls")),
    path("provisioning/callback/", provisioning_callback, name="provisioning-callback"),
]
if settings.EMAIL_TRACKING_WEBHOOKS:
    # Anymail's webhooks, /anymail/<esp>/tracking/, behind ANYMAIL_WEBHOOK_SECRET's basic auth.
    urlpatterns.append(path("anymail/", include("anymail.urls")))
