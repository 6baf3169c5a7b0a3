"""Provisioning backends: whatever creates a client's dashboard workspace.

A backend is any class with `provision(workspace) -> ProvisionResult`, `suspend(workspace)` and
`resume(workspace)` (offboarding and reactivation, provisioning/lifecycle.py), named by the dotted
path in settings.PROVISIONING_BACKEND. It is called outside any transaction and may be called again for the
same workspace after a failure, so a backend that talks to another system should use the workspace
id as its idempotency key. It raises `ProvisionRejected` for a refusal that retrying cannot fix;
any other exception is treated as transient and retried with backoff.
"""

import json
from dataclasses import dataclass
from typing import Protocol

import requests
from django.conf import settings
from django.utils.module_loading import import_string

from core.signing import signature_header

from .links import portal_url
from .models import Workspace


@dataclass(frozen=True)
class ProvisionResult:
    url: str
    external_id: str
    # True when the backend accepted the work and will call back (`/provisioning/callback/`).
    pending: bool = False


class ProvisionRejected(Exception):
    """The backend refused the workspace (HTTP 4xx): staff must look, retrying will not help."""


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


class HttpBackend:
    """Workspaces created by another team's dashboard service, over HTTP (protocol in README.md).

    `POST {PROVISIONING_URL}/workspaces` with an Idempotency-Key that is the same on every retry of
    one workspace and a `Provisioning-Signature` (Stripe's scheme, core.signing). 200/201 is ready,
    202 waits for a signed callback, 4xx is a refusal for staff, 5xx and network errors are retried.
    """

    def provision(self, workspace: Workspace) -> ProvisionResult:
        service = workspace.service
        payload = {
            "workspace_id": str(workspace.id),
            "client": {
                "id": str(workspace.client_id),
                "email": workspace.client.email,
                "name": workspace.client.name,
            },
            "service": {
                "service_id": service.service_id,
                "name": service.name,
                "plan": service.workspace_plan,
            },
        }
        response = self.post("/workspaces", payload, idempotency_key=f"workspace-{workspace.id}")
        data = response.json()
        if response.status_code == 202:
            return ProvisionResult(url="", external_id=str(data["id"]), pending=True)
        return ProvisionResult(url=data["url"], external_id=str(data["id"]))

    def suspend(self, workspace: Workspace) -> None:
        key = f"suspend-{workspace.id}-{workspace.transitions}"  # one key per suspension, its retries too
        self.post(f"/workspaces/{workspace.external_id}/suspend", {}, idempotency_key=key)

    def resume(self, workspace: Workspace) -> None:
        key = f"resume-{workspace.id}-{workspace.transitions}"
        self.post(f"/workspaces/{workspace.external_id}/resume", {}, idempotency_key=key)

    def post(self, path: str, payload: dict, *, idempotency_key: str) -> requests.Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = requests.post(
            settings.PROVISIONING_URL.rstrip("/") + path,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key,
                "Provisioning-Signature": signature_header(body, secret=settings.PROVISIONING_SECRET),
            },
            timeout=settings.PROVISIONING_TIMEOUT,
        )
        if 400 <= response.status_code < 500:
            raise ProvisionRejected(f"HTTP {response.status_code}: {response.text[:2000]}")
        response.raise_for_status()  # 5xx: transient, retried with backoff
        return response


def get_backend() -> Backend:
    """An instance of the configured provisioning backend."""
    return import_string(settings.PROVISIONING_BACKEND)()
