"""The queue's head: an onboarding's own steps go ahead of deliveries that arrived while it started
(core/brokers.py), on the ORM broker the suite runs with and on Redis."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from core.brokers import HEAD_START, HeadOfQueue, OrmBroker, RedisBroker
from crm.models import Onboarding
from stripe_events.webhook_jobs import PROCESS_TASK
from tests.support.pipeline import run_next_task
from tests.support.redis_db import redis_db_or_skip

pytestmark = pytest.mark.django_db
JOB = PROCESS_TASK
STEPS = {"crm.tasks.welcome_email_run", "crm.tasks.workspace_step_run"}
REDIS_TEST_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture(autouse=True)
def empty_queue(db):
    OrmQ.objects.all().delete()


def test_an_onboardings_steps_run_before_the_deliveries_queued_ahead_of_them(pipeline, service):
    checkouts = [pipeline.checkout(email=f"burst{i}@example.com") for i in range(3)]
    for checkout in checkouts:
        assert pipeline.deliver(checkout["events"][0]).status_code == 200

    assert run_next_task() == JOB
    assert {run_next_task(), run_next_task()} == STEPS  # not the two deliveries queued before them
    first = Onboarding.objects.get(checkout_session_id=checkouts[0]["session"]["id"])
    assert first.status == Onboarding.Status.ONBOARDED
    assert run_next_task() == JOB


def package(name: str, *, queued_ago: timedelta = timedelta(0)) -> bytes:
    task = {"id": name, "name": name, "func": "math.floor", "args": (1.5,), "kwargs": {}}
    task["started"] = timezone.now() - queued_ago
    return SignedPackage.dumps(task)


def names(batches) -> list[str]:
    return [SignedPackage.loads(payload)["name"] for batch in batches for _, payload in batch]


def test_the_orm_head_goes_before_the_last_hour_but_not_before_older_work():
    broker = get_broker()
    assert isinstance(broker, OrmBroker)
    stale_lock = timezone.now() - HEAD_START - timedelta(minutes=5)
    OrmQ.objects.create(key=broker.list_key, payload=package("stale"), lock=stale_lock)
    broker.enqueue(package("delivery"))
    broker.enqueue_first(package("step"))

    assert names([broker.dequeue() for _ in range(3)]) == ["stale", "step", "delivery"]
    assert broker.dequeue() is None


@pytest.fixture
def redis_broker(monkeypatch):
    """The Redis broker on a database of its own (django-q reads its connection from Conf)."""
    monkeypatch.setattr(Conf, "REDIS", REDIS_TEST_URL)
    connection = redis_db_or_skip(REDIS_TEST_URL)
    yield RedisBroker(list_key="priority-test")
    connection.flushdb()


def test_redis_head_list_is_popped_first_each_list_in_order(redis_broker):
    redis_broker.enqueue(package("delivery 1"))
    redis_broker.enqueue(package("delivery 2"))
    async_task("math.floor", 1.5, task_name="step 1", broker=HeadOfQueue(redis_broker))
    async_task("math.floor", 1.5, task_name="step 2", broker=HeadOfQueue(redis_broker))
    assert redis_broker.queue_size() == 4

    order = names([redis_broker.dequeue() for _ in range(4)])

    assert order == ["step 1", "step 2", "delivery 1", "delivery 2"]
    assert redis_broker.dequeue() is None


def test_the_oldest_waiting_task_is_found_whichever_list_holds_it(redis_broker):
    """The readiness check takes the oldest of these (onboarding_project/health.py)."""
    redis_broker.enqueue(package("old delivery", queued_ago=timedelta(minutes=10)))
    redis_broker.enqueue(package("new delivery"))
    redis_broker.enqueue_first(package("fresh step"))

    waiting = [SignedPackage.loads(row)["name"] for row in redis_broker.oldest_waiting()]

    assert waiting == ["fresh step", "old delivery"]
