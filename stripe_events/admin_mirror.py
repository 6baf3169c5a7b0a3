"""dj-stripe's mirror of Stripe objects is read-only in our admin, for every user.

Stripe is the source of truth: a local edit would be overwritten by the next sync, and dj-stripe's
"sync" actions call the Stripe API from a request. Each registered dj-stripe admin is replaced by
a subclass that only views (Django's documented unregister/register), keeping its list and search.

dj-stripe's admins also add a URL, `<model>/action/<action>/<model>/`, that runs its custom actions
(resync, sync all, cancel a subscription, release a schedule) behind `admin_view` alone: any staff
user, whatever their permissions, could POST there and make the app call Stripe. Hiding the actions
from `get_actions` does not close that URL, so the read-only admins drop it from `get_urls`.
"""

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.urls import URLPattern


class ReadOnlyAdminMixin:
    """Records written by the system (Stripe's mirror, runs, jobs): viewed in the admin, never edited."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# The URL name dj-stripe's CustomActionMixin gives its action view (djstripe/admin/actions.py).
DJSTRIPE_ACTION_URL_NAME = "djstripe_custom_action"


class ReadOnlyMirrorMixin(ReadOnlyAdminMixin):
    """Mixed into dj-stripe's ModelAdmins (see make_stripe_mirror_read_only)."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # dj-stripe's "sync" actions call the Stripe API from a request

    def get_urls(self) -> list[URLPattern]:
        # No door to dj-stripe's action view for anyone: it checks no permission (see above).
        urls: list[URLPattern] = super().get_urls()  # type: ignore[misc]  # ModelAdmin's, through the MRO
        return [url for url in urls if url.name != DJSTRIPE_ACTION_URL_NAME]


def make_stripe_mirror_read_only(site: admin.AdminSite) -> None:
    """Re-register every dj-stripe model admin on `site` as view-only."""
    for model in apps.get_app_config("djstripe").get_models():
        if not site.is_registered(model):
            continue
        model_admin = site.get_model_admin(model)
        if isinstance(model_admin, ReadOnlyMirrorMixin):
            continue
        read_only = type(
            f"ReadOnly{type(model_admin).__name__}", (ReadOnlyMirrorMixin, type(model_admin)), {}
        )
        site.unregister(model)
        site.register(model, read_only)
