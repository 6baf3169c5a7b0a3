from django.db import models


class StripeWebhookJob(models.Model):
    """The worker's processing of one verified Stripe webhook delivery (a dj-stripe trigger).

    Written in the same transaction as the trigger, so a delivery that Stripe saw answered 200
    is never lost even if the queue message is: the daily reconciliation (and
    `manage.py reconcile_onboarding --fix`) re-enqueues jobs left queued.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"

    trigger = models.OneToOneField(
        "djstripe.WebhookEventTrigger", on_delete=models.CASCADE, related_name="job"
    )
    event_id = models.CharField(max_length=255, db_index=True)
    event_type = models.CharField(max_length=250)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "created"])]
        permissions = [("reprocess_webhook", "Can reprocess Stripe webhooks")]
        # Moved from crm with its table (migrations crm 0011, stripe_events 0001).
        db_table = "crm_stripewebhookjob"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.get_status_display()})"
