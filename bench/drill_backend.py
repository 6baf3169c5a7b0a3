"""A provisioning backend for bench/failure_drills.py: the local backend, slowed on demand.

The drill kills the worker while a workspace is being provisioned, which the local backend does in
a millisecond. While the file named by DRILL_PROVISION_DELAY_FILE exists, each provision first
sleeps for the number of seconds written in it. Never used outside the drills.
"""

import contextlib
import os
import time
from pathlib import Path

from provisioning.backends import LocalBackend, ProvisionResult


class SlowLocalBackend(LocalBackend):
    def provision(self, workspace) -> ProvisionResult:
        flag = os.environ.get("DRILL_PROVISION_DELAY_FILE")
        if flag:
            with contextlib.suppress(OSError, ValueError):
                time.sleep(min(60.0, float(Path(flag).read_text() or 0)))
        return super().provision(workspace)
