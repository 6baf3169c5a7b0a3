from django.db import models


class Workspace(models.Model):
    """A client's dashboard workspace for one service, created by the provisioning backend."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        SUSPENDED = "suspended", "Suspended"

    client = models.ForeignKey("crm.Client", on_delete=models.PROTECT, related_name="workspaces")
    service = models.ForeignKey("crm.Service", on_delete=models.PROTECT, related_name="workspaces")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    url = models.URLField(blank=True, max_length=500)
    backend = models.CharField(max_length=255, blank=True, help_text="Dotted path that provisioned it")
    external_id = models.CharField(max_length=255, blank=True, help_text="The backend's own id")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    callback_due = models.DateTimeField(
        null=True, blank=True, help_text="An asynchronous backend's callback is awaited until then"
    )
    rejected = models.BooleanField(
        default=False, help_text="The backend refused it (4xx): retrying won't help"
    )
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_reason = models.CharField(max_length=300, blank=True)
    # Suspensions and resumptions done so far: part of their Idempotency-Key, so a retry of one
    # repeats its key and the next suspension after a resume does not (an idempotent backend that
    # caches keys would otherwise answer it from its cache and do nothing).
    transitions = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["client", "service"], name="one_workspace_per_client_service")
        ]

    def __str__(self) -> str:
        return f"{self.service} workspace for {self.client}"


class PortalPasswordResetRequest(models.Model):
    """One "forgot password" request on the portal: counted for the rate limit, visible to staff."""

    email = models.CharField(max_length=254, help_text="As typed, normalised (it may match no client)")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    sent = models.BooleanField(default=False, help_text="A link went out (a client's login, under the limit)")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["email", "created"], name="portal_reset_email_idx"),
            models.Index(fields=["ip_address", "created"], name="portal_reset_ip_idx"),
        ]

    def __str__(self) -> str:
        return f"Password reset for {self.email} ({'sent' if self.sent else 'not sent'})"
