from django.contrib import admin
from django.urls import include, path

from crm.webhooks import StripeWebhookView

urlpatterns = [
    # Same path and name as dj-stripe's own view, which ours extends (see crm/webhooks.py).
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("admin/", admin.site.urls),
    path("portal/", include("provisioning.urls")),
]
