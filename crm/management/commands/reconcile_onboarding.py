"""Compare Stripe with the CRM over the last N days, report every gap and, with --fix, repair it."""

import json

from django.core.management.base import BaseCommand, CommandError

from crm.models import ReconciliationRun
from crm.reconcile import Fix, reconciliation_run


class Command(BaseCommand):
    help = (
        "Report paid Checkout Sessions with no onboarding (from Stripe's Events API), unfinished "
        "onboarding steps, failed webhook jobs, invoiced values that differ from the payments, and paid "
        "invoices, refunds and disputes Stripe lists that the ledger lacks or holds in another status; "
        "with --fix, repair them through the services and list what is left for staff."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=7, help="Window to compare, in days (default 7)")
        parser.add_argument("--fix", action="store_true", help="Repair what can be repaired")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON")

    def handle(self, *args, days: int, fix: bool, as_json: bool, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        run, report = reconciliation_run(
            days=days, fix=Fix.ALL if fix else Fix.NONE, triggered_by=ReconciliationRun.TriggeredBy.COMMAND
        )
        if as_json:
            self.stdout.write(json.dumps({"run_id": run.id, **report.as_dict()}, indent=2))
        else:
            self.stdout.write(report.text())
