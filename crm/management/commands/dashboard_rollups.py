"""Check the dashboard's rollups against a full recount, or rebuild them from scratch: the money
rollups (ledger per day, clients per status, churn, MRR per subscription and per currency) and the
onboarding rollups (checkouts per day and measure, work queues, payment → onboarded durations).

manage.py dashboard_rollups            # compare; exit 1 and list the differences if any
manage.py dashboard_rollups --rebuild  # recount and replace them (one transaction)
"""

from django.core.management.base import BaseCommand, CommandError

from crm.rollups import rollups_differences, rollups_rebuild


class Command(BaseCommand):
    help = "Compare the dashboard's rollups with a full recount (--rebuild: replace them by it)."

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Recount and replace the rollups")

    def handle(self, *args, rebuild: bool = False, **options):
        if rebuild:
            rows = rollups_rebuild()
            self.stdout.write(f"rebuilt: {', '.join(f'{k} {v}' for k, v in rows.items())}")
            return
        differences = rollups_differences()
        for line in differences:
            self.stdout.write(line)
        if differences:
            raise CommandError(f"{len(differences)} rollup cells differ from a recount (--rebuild fixes)")
        self.stdout.write("rollups equal a full recount")
