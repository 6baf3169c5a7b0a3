"""Provisioning backends: whatever creates a client's dashboard workspace.

A backend is any class with `provision(workspace) -> ProvisionResult`, `suspend(workspace)` and
`resume(workspace)` (offboarding and reactivation, provisioning/lifecycle.py), named by the dotted
path in settings.PROVISIONING_BACKEND. It is called outside any transaction and may be called again for the
same workspace after a failure, so a backend that talks to another system should use the workspace
id as its idempotency key.
"""

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from .links import portal_url
from .models import Workspace


@dataclass(frozen=True)
class ProvisionResult:
    url: str
    external_id: str


class Backend(Protocol):
    def provision(self, workspace: Workspace) -> ProvisionResult: ...

    def suspend(self, workspace: Workspace) -> None: ...

    def resume(self, workspace: Workspace) -> None: ...


class LocalBackend:
    """The default: the dashboard is a page of this app's client portal."""

    def provision(self, workspace: Workspace) -> ProvisionResult:
        return ProvisionResult(url=portal_url("workspace", workspace.id), external_id=f"local-{workspace.id}")

    def suspend(self, workspace: Workspace) -> None:
        """Nothing to switch off: the portal shows a suspended workspace as such (its status)."""

    def resume(self, workspace: Workspace) -> None:
        """Nothing to switch on: the portal opens the workspace again once it is ready."""


def get_backend() -> Backend:
    """An instance of the configured provisioning backend."""
    return import_string(settings.PROVISIONING_BACKEND)()
