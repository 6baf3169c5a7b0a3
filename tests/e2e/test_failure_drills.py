"""The failure drills, shortened, in the suite: bench/failure_drills.py --quick against real processes.

It runs gunicorn, qcluster (ORM broker, then Redis with two of each), the Stripe sandbox and a fake
Postmark on 127.0.0.1, kills and starves them, fuzzes the webhook and login forms, then checks the
database: no paid checkout lost, nothing duplicated or stuck, no 5xx. The PostgreSQL restart drill
is left out here (the suite's server is shared); run the script with --restart-postgres for it.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from tests.support.processes import ROOT


@pytest.mark.django_db(transaction=True)  # the drills' rows are committed by other processes; flushed after
def test_quick_failure_drills_lose_duplicate_and_strand_nothing():
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the drills run real processes on PostgreSQL (as in CI)")
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    drills = subprocess.Popen(
        [
            sys.executable,
            "bench/failure_drills.py",
            "--quick",
            "--max-seconds",
            "280",
            "--database-url",
            database_url,
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = drills.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        drills.send_signal(signal.SIGTERM)  # the script stops its processes on SIGTERM
        output, _ = drills.communicate(timeout=30)
        pytest.fail(f"the drills overran 300 s:\n{output[-3000:]}")

    lines = output.strip().splitlines()
    assert lines and lines[-1].startswith("{"), output[-3000:]
    result = json.loads(lines[-1])
    summary = {key: result[key] for key in ("lost", "duplicated", "stuck", "fuzz_5xx", "fuzz_unanswered")}
    assert summary == dict.fromkeys(summary, 0), output[-3000:]
    assert result["drills"] >= 6 and result["fuzz_cases"] >= 500, result  # 7 with Redis
    assert drills.returncode == 0, output[-3000:]
