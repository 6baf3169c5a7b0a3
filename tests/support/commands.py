"""Management commands as staff run them, their JSON output parsed."""

import io
import json

from django.core.management import call_command


def reconcile(*args: str) -> dict:
    """`manage.py reconcile_onboarding --json <args>`: its report."""
    out = io.StringIO()
    call_command("reconcile_onboarding", "--json", *args, stdout=out)
    return json.loads(out.getvalue())
