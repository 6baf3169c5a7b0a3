"""Old task path of the onboarding's workspace step, which moved to crm.tasks.workspace_step_run.

Queued tasks and retry schedules written before the move name `provisioning.tasks.workspace_provision`;
crm's migration 0012 renames the schedules, this forwards messages already queued. It goes by name,
so provisioning does not import crm. Drop it once no queued or scheduled row can name it: after one
release plus the longest retry schedule (RETRY_WINDOW_HOURS, a day by default).
"""

from django.utils.module_loading import import_string


def workspace_provision(onboarding_id: int) -> str:
    """Deprecated alias of crm.tasks.workspace_step_run."""
    return import_string("crm.tasks.workspace_step_run")(onboarding_id)
