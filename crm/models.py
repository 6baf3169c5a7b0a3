from django.db import models
from django.db.models.functions import Lower, Trim
from django.utils import timezone


class Service(models.Model):
    """Something the agency sells; `service_id` is the Checkout Session's metadata.serviceId."""

    service_id = models.SlugField(max_length=100, unique=True, help_text="metadata.serviceId in Stripe")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True, help_text="Inactive services are held for review")
    send_welcome_email = models.BooleanField(default=True)
    welcome_email_subject = models.CharField(
        max_length=200, blank=True, help_text="Default: “Welcome to <service name>”"
    )
    provision_workspace = models.BooleanField(default=True)
    workspace_plan = models.CharField(
        max_length=100, blank=True, help_text="Passed to the provisioning backend"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.service_id})"


class Client(models.Model):
    """A paying client, one per normalised email (lower case, no surrounding spaces)."""

    class LifecycleStatus(models.TextChoices):
        ACTIVE = "active", "Active"
        AT_RISK = "at_risk", "At risk"
        CHURNED = "churned", "Churned"

    email = models.EmailField(unique=True, help_text="Primary login; stored normalised")
    name = models.CharField(max_length=200, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    ordered_service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.PROTECT, related_name="clients"
    )
    invoiced_value = models.BigIntegerField(
        default=0,
        help_text=(
            "Net lifetime value in minor units of `currency`: paid − succeeded refunds − lost disputes "
            "(recomputed from the ledger, crm.MoneyMovement)"
        ),
    )
    currency = models.CharField(max_length=3, blank=True, help_text="The currency of the first payment")
    user = models.OneToOneField(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="client"
    )
    # -- money truth and lifecycle (crm/ledger.py, crm/lifecycle.py) --
    lifecycle_status = models.CharField(
        max_length=10, choices=LifecycleStatus.choices, default=LifecycleStatus.ACTIVE, db_index=True
    )
    lifecycle_reason = models.CharField(max_length=300, blank=True, help_text="Why the status is what it is")
    lifecycle_changed_at = models.DateTimeField(null=True, blank=True)
    keep_active = models.BooleanField(
        default=False, help_text="Staff: never offboard automatically (refunds, lost disputes, cancellations)"
    )
    offboarded_by_staff = models.BooleanField(
        default=False, help_text="Staff offboarded by hand; a new payment or staff reactivation clears it"
    )
    # -- end money truth and lifecycle --
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(email=Lower(Trim("email"))),
                name="client_email_normalised",
            )
        ]
        # The changelist's order (-created, then -pk) read backwards from an index, no sort.
        # Email prefix search uses the unique constraint's varchar_pattern_ops twin that Django
        # adds on PostgreSQL; the name search's trigram index is PostgreSQL-only and lives in
        # migration 0008 alone (see there).
        indexes = [models.Index(fields=["created", "id"], name="client_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class Payment(models.Model):
    """One onboarding's payment, recorded once: a paid Checkout Session, or a paid stand-alone invoice
    that onboarded a client (then `checkout_session_id` holds the invoice id, like the onboarding's).

    Kept as it was for the admin, portal, dashboard and reconciliation; the whole money history
    (renewals, later invoices, refunds, disputes) is the ledger, `MoneyMovement`, whose payment row
    for this onboarding links here (`MoneyMovement.payment`). The client's value comes from the ledger.
    """

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="payments")
    checkout_session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.PROTECT)
    amount = models.BigIntegerField(help_text="Minor units of `currency`")
    currency = models.CharField(max_length=3)
    livemode = models.BooleanField(default=False)
    paid_at = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_at"]
        indexes = [
            # The changelist's order (-paid_at, -pk), its date filter and the dashboard's windows.
            models.Index(fields=["paid_at", "id"], name="payment_paid_at_idx"),
            models.Index(fields=["stripe_customer_id"], name="payment_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.upper()} ({self.checkout_session_id})"


class Onboarding(models.Model):
    """One per Checkout Session: decides, then drives the welcome email and workspace steps."""

    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        HELD = "held", "Held for review"
        IN_PROGRESS = "in_progress", "In progress"
        ONBOARDED = "onboarded", "Onboarded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    class HeldReason(models.TextChoices):
        CURRENCY_NOT_ALLOWED = "currency_not_allowed", "Currency not accepted"
        LIVEMODE_MISMATCH = "livemode_mismatch", "Live/test mode mismatch"
        SERVICE_MISSING = "service_missing", "No serviceId in metadata"
        SERVICE_UNKNOWN = "service_unknown", "Unknown service"
        SERVICE_INACTIVE = "service_inactive", "Inactive service"
        EMAIL_MISSING = "email_missing", "No email on the session"
        # No longer raised (a client may pay in several currencies); kept for older rows.
        CURRENCY_MISMATCH = "currency_mismatch", "Currency differs from the client's"
        EMAIL_REFUSED = "email_refused", "Welcome email refused"
        EMAIL_LOGIN_CONFLICT = "email_login_conflict", "Email belongs to another login"
        EMAIL_BOUNCED = "email_bounced", "Welcome email bounced"

    class StepStatus(models.TextChoices):
        NOT_STARTED = "not_started", "Not started"
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Waiting to retry"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused by recipient"

    class EmailDelivery(models.TextChoices):
        """What the ESP's tracking webhooks last said about the current welcome email."""

        SENT = "sent", "Sent, no report yet"
        DEFERRED = "deferred", "Deferred (ESP retrying)"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        REJECTED = "rejected", "Rejected by the ESP"
        COMPLAINED = "complained", "Marked as spam"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    class Source(models.TextChoices):
        CHECKOUT = "checkout", "Checkout Session"
        INVOICE = "invoice", "Stand-alone invoice"

    checkout_session_id = models.CharField(
        max_length=255, unique=True, help_text="The Checkout Session id, or the invoice id (source invoice)"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CHECKOUT)
    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.PROTECT, related_name="onboardings"
    )
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.PROTECT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT)
    held_reason = models.CharField(max_length=30, choices=HeldReason.choices, blank=True)
    held_detail = models.TextField(blank=True)
    # What the session said, kept for review even when no client was created.
    customer_email = models.CharField(max_length=254, blank=True)
    customer_name = models.CharField(max_length=200, blank=True)
    service_ref = models.CharField(max_length=100, blank=True, help_text="metadata.serviceId as sent")
    amount = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    livemode = models.BooleanField(default=False)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    email_status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.NOT_STARTED)
    email_attempts = models.PositiveIntegerField(default=0)
    email_last_error = models.TextField(blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    email_message_id = models.CharField(max_length=255, blank=True)
    email_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current (or last) send attempt started"
    )
    email_resends = models.PositiveIntegerField(
        default=0, help_text="Resends staff asked for; part of the email's stable Message-ID"
    )
    email_delivery = models.CharField(
        max_length=12,
        choices=EmailDelivery.choices,
        blank=True,
        help_text="From the ESP's tracking webhooks, for the current send",
    )
    email_delivery_at = models.DateTimeField(null=True, blank=True, help_text="When the ESP reported it")
    email_delivery_detail = models.TextField(blank=True, help_text="The ESP's reason for a bad end")

    workspace_status = models.CharField(
        max_length=12, choices=StepStatus.choices, default=StepStatus.NOT_STARTED
    )
    workspace_attempts = models.PositiveIntegerField(default=0)
    workspace_last_error = models.TextField(blank=True)
    # The step's own clock: `updated` moves with the email step too, which hid a dead worker's run.
    workspace_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current (or last) provisioning attempt started"
    )

    onboarded_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "created"]),
            # The changelist's order (-created, -pk) read backwards from an index, no sort.
            models.Index(fields=["created", "id"], name="onboarding_created_idx"),
            models.Index(fields=["held_reason", "created"], name="onboarding_held_reason_idx"),
            # The dashboard's queue links: email / workspace steps waiting to retry or failed.
            models.Index(fields=["email_status", "created"], name="onboarding_email_status_idx"),
            models.Index(fields=["workspace_status", "created"], name="onboarding_workspace_st_idx"),
            # The dashboard's bounce counts per window.
            models.Index(fields=["email_delivery", "email_delivery_at"], name="onboarding_email_deliv_idx"),
            # The dashboard's per-window counts (crm/selectors/dashboard.py).
            models.Index(fields=["paid_at"], name="onboarding_paid_at_idx"),
            models.Index(fields=["onboarded_at"], name="onboarding_onboarded_at_idx"),
            # Email prefix search (LIKE 'x%'): pattern ops work whatever the database collation;
            # other databases ignore opclasses and get a plain index.
            models.Index(
                fields=["customer_email"],
                name="onboarding_email_prefix_idx",
                opclasses=["varchar_pattern_ops"],
            ),
        ]
        permissions = [
            ("approve_onboarding", "Can approve or reject held onboardings"),
            ("resend_welcome_email", "Can resend welcome emails"),
            ("retry_provisioning", "Can retry workspace provisioning"),
        ]

    def __str__(self) -> str:
        return f"Onboarding {self.checkout_session_id} ({self.get_status_display()})"


class HeldOnboarding(Onboarding):
    """The needs-review queue in the admin: onboardings held for staff, oldest first."""

    class Meta:
        proxy = True
        verbose_name = "onboarding needing review"
        verbose_name_plural = "needs review"


class Activity(models.Model):
    """One line of a client's timeline: what happened, to which onboarding, by whom, when."""

    class Kind(models.TextChoices):
        STRIPE = "stripe", "Stripe event"
        PAYMENT = "payment", "Payment"
        ONBOARDING = "onboarding", "Onboarding"
        EMAIL = "email", "Email"
        WORKSPACE = "workspace", "Workspace"
        STAFF = "staff", "Staff action"
        NOTE = "note", "Note"

    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.CASCADE, related_name="activities"
    )
    onboarding = models.ForeignKey(
        Onboarding, null=True, blank=True, on_delete=models.CASCADE, related_name="activities"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    summary = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["client", "created"]),
            models.Index(fields=["onboarding", "created"]),
        ]

    def __str__(self) -> str:
        return self.summary


class EmailEvent(models.Model):
    """One tracking event from the ESP (Anymail's normalised form), recorded once.

    Deduplicated by the ESP's event id, or by (message, type, time) for ESPs that give none. An
    event whose message id matches no recorded send yet waits unlinked and unapplied; recording the
    send applies it (crm.services.email_tracking).
    """

    onboarding = models.ForeignKey(
        Onboarding, null=True, blank=True, on_delete=models.CASCADE, related_name="email_events"
    )
    esp = models.CharField(max_length=40)
    event_id = models.CharField(max_length=255, blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    event_type = models.CharField(max_length=20)
    timestamp = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    reject_reason = models.CharField(max_length=20, blank=True)
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    applied = models.BooleanField(
        default=False, help_text="Taken into the onboarding's delivery status (or found not to apply)"
    )
    received = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["received", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["esp", "event_id"], condition=~models.Q(event_id=""), name="email_event_once_by_id"
            ),
            models.UniqueConstraint(
                fields=["esp", "message_id", "event_type", "timestamp"],
                condition=models.Q(event_id=""),
                name="email_event_once_without_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.esp} {self.event_type} {self.message_id}"


class ReconciliationRun(models.Model):
    """One run of `reconcile_onboarding`: what it compared, found and repaired, for the admin."""

    class TriggeredBy(models.TextChoices):
        SCHEDULE = "schedule", "Daily schedule"
        COMMAND = "command", "Management command"

    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    days = models.PositiveIntegerField(help_text="Window compared, in days before `started`")
    fixed = models.BooleanField(default=False, help_text="Repairs were made (not a report-only run)")
    triggered_by = models.CharField(max_length=10, choices=TriggeredBy.choices)
    events_scanned = models.PositiveIntegerField(default=0, help_text="Stripe checkout events read")
    missed_checkouts = models.PositiveIntegerField(default=0)
    unfinished_onboardings = models.PositiveIntegerField(default=0)
    failed_webhooks = models.PositiveIntegerField(default=0)
    value_mismatches = models.PositiveIntegerField(default=0)
    repaired = models.PositiveIntegerField(default=0)
    for_staff = models.PositiveIntegerField(default=0)
    report = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Why the run stopped early, if it did")

    class Meta:
        ordering = ["-started"]
        get_latest_by = "started"

    def __str__(self) -> str:
        return f"Reconciliation {self.started:%Y-%m-%d %H:%M} ({self.get_triggered_by_display()})"


class BackfillRun(models.Model):
    """One `manage.py backfill_onboarding` pass over a window of Stripe history, and its checkpoint.

    Stripe lists newest first, so the run walks back in time: `last_session_id` is the oldest
    session fully processed so far and a rerun with the same arguments continues with
    `starting_after` it. `window_end` freezes the upper bound at the first start, so a resumed
    run lists exactly the sessions the interrupted one would have.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed (resumable)"
        COMPLETED = "completed", "Completed"

    since = models.DateTimeField(help_text="Sessions created at or after this instant")
    until = models.DateTimeField(null=True, blank=True, help_text="--until as given (exclusive)")
    window_end = models.DateTimeField(help_text="Exclusive upper bound used: --until, or the first start")
    service_ref = models.CharField(max_length=100, blank=True, help_text="--service, if narrowed")
    no_email = models.BooleanField(default=False)
    livemode = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    last_session_id = models.CharField(max_length=255, blank=True)
    last_created = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    failed_sessions = models.JSONField(default=list, blank=True)
    pages = models.PositiveIntegerField(default=0)
    stripe_requests = models.PositiveIntegerField(default=0)
    starts = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True)
    started = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"Backfill #{self.pk} from {self.since:%Y-%m-%d} ({self.get_status_display()})"


class StaffAlertBatch(models.Model):
    """One message to staff (Slack and/or email) carrying every alert of a kind in a window."""

    kind = models.CharField(max_length=20)
    count = models.PositiveIntegerField()
    text = models.TextField()
    channels_pending = models.JSONField(default=list, help_text="Channels not yet delivered to")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["kind", "created"], name="alert_batch_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} x{self.count} ({'sent' if self.sent_at else 'pending'})"


class StaffAlert(models.Model):
    """Something staff should act on; batched into at most one message per kind per window."""

    class Kind(models.TextChoices):
        HELD = "held", "Onboarding held for review"
        STEP_FAILED = "step_failed", "Onboarding step failed for good"
        DISPUTE_OPENED = "dispute_opened", "Dispute opened"
        CLIENT_CHURNED = "client_churned", "Client churned"
        WEBHOOK_FAILED = "webhook_failed", "Stripe webhook gave up"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    summary = models.CharField(max_length=300)
    url = models.CharField(max_length=500, help_text="The admin page that fixes it")
    batch = models.ForeignKey(
        StaffAlertBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["batch", "kind", "created"], name="alert_unbatched_idx")]

    def __str__(self) -> str:
        return self.summary


class MoneyMovement(models.Model):
    """One money movement from Stripe, recorded once, keyed by its Stripe id (the ledger).

    - payment: a paid Checkout Session (`stripe_id` = the session id), or a paid invoice (`stripe_id`
      = the invoice id). A subscription-mode session's payment is its first invoice, so the session
      and that invoice's `invoice.paid` both key the row by the invoice id: one row, either order.
      An invoice whose payment failed is a payment row with status `payment_failed` that does not
      count until it is paid.
    - refund (`re_…`): counts only while `succeeded`; failed or cancelled restores the value.
    - dispute (`du_…`): counts (deducts) only when `lost`; open disputes put the client at risk.
    - cancellation (`sub_…:deleted`): not money (amount 0, never counts); the subscription's end,
      kept here because it is keyed by a Stripe id and ends the payments of its service.

    `client` is empty while the payment a refund or dispute belongs to is not known yet
    (out-of-order delivery); it is attached when the payment is recorded. Settlement fields come
    from the movement's own balance transactions (all of them: a refund and its failure, a
    dispute's withdrawal and reinstatement); `settlement_net` is null until they are known.
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"
        CANCELLATION = "cancellation", "Subscription cancelled"

    stripe_id = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.PROTECT, related_name="money_movements"
    )
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="movement"
    )
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField(help_text="Minor units of `currency`, always positive")
    status = models.CharField(max_length=30, help_text="Stripe's status of the object")
    counts = models.BooleanField(default=False, help_text="Part of the client's value now")
    livemode = models.BooleanField(default=False)
    billing_reason = models.CharField(
        max_length=40, blank=True, help_text="Invoices: Stripe's billing_reason"
    )
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    invoice_id = models.CharField(max_length=255, blank=True)
    subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    checkout_session_id = models.CharField(max_length=255, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    occurred_at = models.DateTimeField()
    period_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Subscription payments: the days of the billing period it pays for"
    )

    balance_transaction_id = models.CharField(max_length=255, blank=True, help_text="The first of them")
    settlement_currency = models.CharField(max_length=3, blank=True)
    settlement_amount = models.BigIntegerField(null=True, blank=True)
    settlement_fee = models.BigIntegerField(null=True, blank=True)
    settlement_net = models.BigIntegerField(null=True, blank=True, help_text="Empty: not available yet")
    settlement_transactions = models.PositiveIntegerField(default=0)
    exchange_rate = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["client", "occurred_at"], name="movement_client_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency.upper()} ({self.stripe_id})"


# -- dashboard rollups (crm/rollups.py) -------------------------------------------------------------
# Kept by PostgreSQL triggers on crm_moneymovement and crm_client (migration 0017), so every write,
# ORM save, queryset update, bulk insert or COPY, changes them in its own transaction; the
# subscription figures by `subscription_mrr_refresh` in the ledger's transaction. `rollups_rebuild`
# (the `dashboard_rollups` command) recounts them all from scratch.


class LedgerDayRollup(models.Model):
    """Counted ledger money per day (UTC), currency and service: the dashboard's revenue."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    service_key = models.IntegerField(help_text="The service's id; 0 for none (no FK: a plain key)")
    paid = models.BigIntegerField(default=0, help_text="Counted payments, minor units")
    refunded = models.BigIntegerField(default=0, help_text="Succeeded refunds, minor units")
    disputed = models.BigIntegerField(default=0, help_text="Lost disputes, minor units")
    payments = models.IntegerField(default=0, help_text="How many counted payments")
    shard = models.SmallIntegerField(
        default=0, help_text="The movement's id mod 8: concurrent writers of one day rarely share a row"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "currency", "service_key", "shard"], name="ledger_day_rollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.currency} service {self.service_key}"


class ClientStatusCount(models.Model):
    """How many clients have each lifecycle status now (a counter per status)."""

    status = models.CharField(max_length=10)
    shard = models.SmallIntegerField(
        default=0, help_text="The client's id mod 8: concurrent onboardings rarely wait on one counter row"
    )
    clients = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["status", "shard"], name="client_status_count_key")]

    def __str__(self) -> str:
        return f"{self.status}: {self.clients}"


class ChurnDayRollup(models.Model):
    """Clients churned now whose status changed to churned on `day` (UTC): churn in a window."""

    day = models.DateField(unique=True)
    churned = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.churned}"


class SubscriptionMrr(models.Model):
    """One subscription's monthly recurring revenue, from its latest counted payment in the ledger.

    `monthly_amount` is that payment normalised to a month (a yearly one / 12, a weekly one × 52 / 12)
    from its billing period, in minor units of `currency`; inactive once cancelled.
    """

    subscription_id = models.CharField(max_length=255, unique=True)
    currency = models.CharField(max_length=3)
    monthly_amount = models.BigIntegerField(default=0)
    active = models.BooleanField(default=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["currency"], condition=models.Q(active=True), name="subscription_mrr_active_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.monthly_amount} {self.currency} a month"


class OnboardingDayRollup(models.Model):
    """Checkouts counted per day (UTC) and measure, for the dashboard's windows.

    Measures (crm/onboarding_rollups.py keeps them, by PostgreSQL triggers): `payments` (Payment
    rows, by paid_at), `paid_unrecorded` (held or rejected onboardings with no Payment, by paid_at),
    `onboarded` (by onboarded_at), `held` and `failed` (held or failed now, by paid_at else created),
    `email_bounced` (a bad end reported by the ESP, by email_delivery_at).
    """

    day = models.DateField()
    measure = models.CharField(max_length=20)
    shard = models.SmallIntegerField(
        default=0, help_text="The counted row's id mod 8: concurrent writers of one day rarely share a row"
    )
    total = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "measure", "shard"], name="onboarding_day_rollup_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.measure}: {self.total}"


class OnboardingQueueCount(models.Model):
    """How many onboardings wait in each of the dashboard's work queues now (held, failed, …)."""

    queue = models.CharField(max_length=20)
    shard = models.SmallIntegerField(
        default=0, help_text="The onboarding's id mod 8: concurrent onboardings rarely share a row"
    )
    total = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "shard"], name="onboarding_queue_count_key")]

    def __str__(self) -> str:
        return f"{self.queue}: {self.total}"


class OnboardingDurationRollup(models.Model):
    """Payment → onboarded durations per day onboarded (UTC), as a histogram with log-spaced buckets
    (crm/onboarding_rollups.py): the dashboard's p50 and p95 without reading the onboardings."""

    day = models.DateField()
    bucket = models.SmallIntegerField(help_text="crm.duration_histogram.duration_bucket of the duration")
    shard = models.SmallIntegerField(
        default=0, help_text="The onboarding's id mod 8: concurrent onboardings rarely share a row"
    )
    total = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "bucket", "shard"], name="onboarding_duration_rollup_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} bucket {self.bucket}: {self.total}"


class SubscriptionMrrTotal(models.Model):
    """Active subscriptions and their MRR per currency: SubscriptionMrr summed by a PostgreSQL
    trigger on it (crm/rollups.py), so the dashboard reads a few rows, not every subscription."""

    currency = models.CharField(max_length=3)
    shard = models.SmallIntegerField(
        default=0, help_text="The subscription row's id mod 8: concurrent renewals rarely share a row"
    )
    subscriptions = models.IntegerField(default=0)
    mrr = models.BigIntegerField(default=0, help_text="Minor units of `currency` a month")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["currency", "shard"], name="subscription_mrr_total_key")
        ]

    def __str__(self) -> str:
        return f"{self.currency}: {self.subscriptions} subscriptions, {self.mrr} a month"
