"""The staff admin: Django's AdminSite with a dashboard of today's onboarding on its front page."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.money import format_money
from crm.charts import revenue_charts
from crm.models import Client
from crm.selectors.dashboard import WINDOWS, dashboard_figures, human_duration

from .staff_otp import StaffLoginForm, otp_satisfied

COUNT_ROWS = (
    ("paid", "Paid", "Every paid checkout: onboarded, in progress, failed, held or rejected"),
    ("onboarded", "Onboarded", "Reached “onboarded” in the window"),
    ("held", "Held for review", "Paid in the window and held for review now"),
    ("failed", "Failed", "Paid in the window and failed now"),
    (
        "email_bounced",
        "Welcome emails bounced",
        "Bounced, rejected, spam or unsubscribed, reported in the window",
    ),
)


@dataclass(frozen=True)
class Queue:
    label: str
    count: int
    url: str | None


class OnboardingAdminSite(admin.AdminSite):
    site_header = "Onboarding"
    site_title = "Onboarding"
    index_title = "Dashboard"
    login_form = StaffLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        # Superusers and Operations also need their second factor (onboarding_project.staff_otp).
        return super().has_permission(request) and otp_satisfied(request.user)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not otp_satisfied(user):
            return redirect("otp_setup")
        return super().login(request, extra_context)

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = dict(extra_context or {})
        if request.user.has_perms(["crm.view_onboarding", "crm.view_payment"]):
            context["dashboard"] = self.dashboard_context(request)
        return super().index(request, extra_context=context)

    def dashboard_context(self, request: HttpRequest) -> dict:
        figures = dashboard_figures(now=timezone.now())
        return {
            "figures": figures,
            "windows": [label for _, label in WINDOWS],
            "count_rows": [
                {
                    "key": key,
                    "label": label,
                    "help": help_text,
                    "values": [getattr(figures.counts[key], window) for window, _ in WINDOWS],
                }
                for key, label, help_text in COUNT_ROWS
            ],
            "p50": human_duration(figures.duration_p50),
            "p95": human_duration(figures.duration_p95),
            "queues": self.queues(request, figures.queues),
            "charts": revenue_charts(figures.revenue),
            **self.money_context(figures),
        }

    def money_context(self, figures) -> dict:
        """Net revenue per currency and window, subscriptions, MRR, churn and clients per status."""
        money = figures.money
        if money is None:
            return {}
        rows = []
        for c in money.currencies:
            windows = []
            for key, _ in WINDOWS:
                paid, refunded = (
                    format_money(c.paid[key], c.currency),
                    format_money(c.refunded[key], c.currency),
                )
                disputed = format_money(c.disputed[key], c.currency)
                detail = f"paid {paid}, refunded {refunded}, lost to disputes {disputed}"
                windows.append({"net": format_money(c.net[key], c.currency), "detail": detail})
            rows.append(
                {
                    "currency": c.currency,
                    "windows": windows,
                    "active_subscriptions": c.active_subscriptions,
                    "mrr": format_money(c.mrr, c.currency),
                }
            )
        statuses = [
            {"label": label, "count": money.statuses.get(value, 0)}
            for value, label in Client.LifecycleStatus.choices
        ]
        return {
            "money_rows": rows,
            "churn": [money.churn[key] for key, _ in WINDOWS],
            "statuses": statuses,
        }

    def queues(self, request: HttpRequest, counts: dict[str, int]) -> list[Queue]:
        """What waits for staff, each linked to its filtered changelist when the user may view it."""
        onboardings = ("crm_onboarding_changelist", "crm.view_onboarding")
        jobs = ("stripe_events_stripewebhookjob_changelist", "stripe_events.view_stripewebhookjob")
        # The "Needs review" queue for those who may view it, else the filtered onboarding list.
        held_url = self.changelist_url(
            request, "crm_heldonboarding_changelist", "crm.view_heldonboarding"
        ) or self.changelist_url(request, *onboardings, status__exact="held")
        return [
            Queue("Held for review", counts["held"], held_url),
            Queue(
                "Failed onboardings",
                counts["failed"],
                self.changelist_url(request, *onboardings, status__exact="failed"),
            ),
            Queue(
                "Welcome emails waiting to retry",
                counts["email_retrying"],
                self.changelist_url(request, *onboardings, email_status__exact="retrying"),
            ),
            Queue(
                "Welcome emails failed",
                counts["email_failed"],
                self.changelist_url(request, *onboardings, email_status__exact="failed"),
            ),
            Queue(
                "Welcome emails bounced",
                counts["email_bounced"],
                self.changelist_url(
                    request,
                    "crm_heldonboarding_changelist",
                    "crm.view_heldonboarding",
                    held_reason__exact="email_bounced",
                )
                or self.changelist_url(
                    request, *onboardings, status__exact="held", held_reason__exact="email_bounced"
                ),
            ),
            Queue(
                "Workspaces failed",
                counts["workspace_failed"],
                self.changelist_url(request, *onboardings, workspace_status__exact="failed"),
            ),
            Queue(
                "Stripe webhooks waiting to retry",
                counts["webhook_retrying"],
                self.changelist_url(request, *jobs, status__exact="retrying"),
            ),
            Queue(
                "Stripe webhooks failed",
                counts["webhook_failed"],
                self.changelist_url(request, *jobs, status__exact="failed"),
            ),
        ]

    def changelist_url(self, request: HttpRequest, name: str, permission: str, **filters: str) -> str | None:
        if not request.user.has_perm(permission):
            return None
        url = reverse(f"{self.name}:{name}", current_app=self.name)
        return f"{url}?{urlencode(filters)}" if filters else url
