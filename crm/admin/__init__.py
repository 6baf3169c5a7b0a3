"""The staff cockpit: clients, the needs-review queue, onboardings, payments, services, runs.

Actions call services (crm.services.staff) and report with message_user; each is guarded by a
permission (crm.approve_onboarding, …) so a role only sees, and can only post, what it may run.
Importing the modules registers their model admins (Django's admin autodiscovery imports this).
"""

from . import clients, onboardings, payments, runs  # noqa: F401
