"""Injected failures (latency, 500, 429, connection reset, timeout) for resilience tests.

How stripe-python 15 reacts (stripe/_http_client.py `_should_retry`, default max_network_retries=2):
- A `Stripe-Should-Retry` response header wins: "true" retries, "false" never retries.
- Otherwise 409 and any status >= 500 are retried with exponential backoff (0.5 s, 1 s, ... max 5 s).
- 429 is NOT retried unless `Stripe-Should-Retry: true`; it raises stripe.RateLimitError.
  Real Stripe sends that header on lock-timeout 429s, so a 429 fault may set `should_retry`.
- Connection errors and timeouts are retried (APIConnectionError.should_retry is True for them).
"""

import random
import threading
from dataclasses import dataclass, field

KINDS = ("latency", "http_500", "http_429", "reset", "timeout")


@dataclass
class Fault:
    """One rule: `endpoint` is a counter pattern such as `GET /v1/checkout/sessions/{id}`, or `*`."""

    endpoint: str = "*"
    kind: str = "http_500"
    rate: float = 1.0
    count: int | None = None
    latency_ms: int = 0
    seconds: float = 30.0
    seed: int = 0
    should_retry: bool | None = None
    fired: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if not 0 <= float(self.rate) <= 1:
            raise ValueError("rate must be between 0 and 1")
        if self.count is not None and int(self.count) < 0:
            raise ValueError("count must be >= 0")
        self.rate = float(self.rate)
        # Each rule has its own seeded generator so a test's outcome does not depend on other rules.
        self._random = random.Random(self.seed)

    def applies_to(self, pattern: str) -> bool:
        return self.endpoint in ("*", pattern)

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def describe(self) -> dict:
        """JSON-friendly view for the control API."""
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "rate": self.rate,
            "count": self.count,
            "latency_ms": self.latency_ms,
            "seconds": self.seconds,
            "seed": self.seed,
            "should_retry": self.should_retry,
            "fired": self.fired,
        }


class FaultInjector:
    """Thread-safe set of fault rules; `pick` decides whether a request misbehaves."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict]:
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def pick(self, pattern: str) -> Fault | None:
        """Return the first live rule matching `pattern` that fires for this request."""
        with self._lock:
            for fault in self._faults:
                if not fault.applies_to(pattern) or fault.exhausted():
                    continue
                if fault._random.random() < fault.rate:
                    fault.fired += 1
                    return fault
        return None
