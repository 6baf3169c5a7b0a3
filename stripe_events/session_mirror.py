"""Mirror a listed PAGE of Checkout Sessions into dj-stripe's tables in a few statements.

dj-stripe's `sync_from_stripe_data` writes one object at a time: for each it looks up the owner
account (the API key's row and the account's: three or four statements), reads the row, opens a
savepoint around the insert, and does the same recursively for every related object. For a
session with its customer, payment intent and payment method that is ~30 statements. The
backfill lists 100 sessions a request with all of them expanded, so here the rows are built from
that data with dj-stripe's own field mapping (each field's `stripe_to_db`, relations as ids, the
`_manipulate_stripe_object_hook`) and the owner account is resolved once a page; then each table
gets one INSERT for the page. No library mirrors dj-stripe objects in bulk, hence this module.

The rows equal what the webhook path's `checkout_session_sync` writes for the same sessions
(tests/crm/test_backfill_equivalence.py compares them): the session's related objects are stored
with their relations as ids, the session's `customer` and `payment_intent` as ids; a customer,
payment method or payment intent already mirrored is left as it is (dj-stripe only creates the
related rows it does not have, and the webhook path skips the payment method of a known intent),
and the session itself is created or updated.

Anything the bulk path cannot write exactly as dj-stripe would goes through dj-stripe's own sync,
one object at a time: an object whose dj-stripe hooks do more than map fields (a customer with a
discount, Source objects or a subscriber key in its metadata; a session naming a subscriber), an
object referring to a Stripe object neither in the page nor mirrored yet (dj-stripe retrieves it:
a subscription-mode session's subscription), or one whose fields differ in shape from the rest.
"""

from collections.abc import Iterable
from typing import Any

from django.db import models
from djstripe.models import Account, Customer, PaymentIntent, PaymentMethod, Session
from djstripe.settings import djstripe_settings

from .stripe_json import stripe_id_of

# Fields dj-stripe's `_stripe_object_to_record` leaves out (besides the `djstripe_*` ones).
IGNORED_FIELDS = {"date_purged", "subscriber", "stripe_data"}
# Columns never rewritten when a mirrored session is updated.
KEEP_ON_UPDATE = {"djstripe_id", "id", "djstripe_created"}

StripeModel = type[Customer] | type[PaymentMethod] | type[PaymentIntent] | type[Session]
Pair = tuple[dict[str, Any], dict[str, Any]]  # (the object's data, its row's field values)


def _id_of(value: Any) -> str | None:
    """An expandable field as dj-stripe stores a relation: its id, or None."""
    return stripe_id_of(value) or None


def checkout_sessions_mirror(sessions: Iterable[dict[str, Any]], *, api_key: str) -> None:
    """Mirror listed sessions (customer, payment_intent.payment_method expanded) with their objects.

    Run it in a transaction: the page is mirrored whole or not at all.
    """
    owner = Account.get_or_retrieve_for_api_key(api_key)
    customers: dict[str, dict[str, Any]] = {}
    methods: dict[str, dict[str, Any]] = {}
    intents: dict[str, dict[str, Any]] = {}
    flat_sessions: dict[str, dict[str, Any]] = {}
    for data in sessions:
        customer, intent = data.get("customer"), data.get("payment_intent")
        if isinstance(customer, dict):
            customers.setdefault(customer["id"], customer)
        if isinstance(intent, dict):
            method = intent.get("payment_method")
            if isinstance(method, dict):
                methods.setdefault(method["id"], method)
            flat_intent = {
                **intent,
                "payment_method": _id_of(method),
                "latest_charge": _id_of(intent.get("latest_charge")),
            }
            intents.setdefault(intent["id"], flat_intent)
        flat_sessions[data["id"]] = {**data, "customer": _id_of(customer), "payment_intent": _id_of(intent)}

    # The webhook path syncs an intent's payment method only when it creates the intent.
    known_intents = set(PaymentIntent.objects.filter(id__in=intents).values_list("id", flat=True))
    for intent_id in known_intents:
        methods.pop(intents.pop(intent_id)["payment_method"] or "", None)

    in_page = {Customer: set(customers), PaymentMethod: set(methods), PaymentIntent: set(intents)}
    _mirror(Customer, customers.values(), owner=owner, api_key=api_key, in_page=in_page, update=False)
    _mirror(PaymentMethod, methods.values(), owner=owner, api_key=api_key, in_page=in_page, update=False)
    _mirror(PaymentIntent, intents.values(), owner=owner, api_key=api_key, in_page=in_page, update=False)
    _mirror(Session, flat_sessions.values(), owner=owner, api_key=api_key, in_page=in_page, update=True)


def _mirror(
    model: StripeModel,
    objects: Iterable[dict[str, Any]],
    *,
    owner: Account | None,
    api_key: str,
    in_page: dict[Any, set[str]],
    update: bool,
) -> None:
    """One INSERT for the objects the bulk path can write; dj-stripe's sync for the others."""
    records: list[Pair] = []
    slow: list[dict[str, Any]] = []
    for data in objects:
        record = _record(model, data, owner)
        if record is None:
            slow.append(data)
        else:
            records.append((data, record))
    records, unknown = _with_known_relations(model, records, in_page)
    slow += unknown
    if records:
        shape = max({frozenset(record) for _, record in records}, key=len)
        slow += [data for data, record in records if frozenset(record) != shape]
        rows = [model(**record) for _, record in records if frozenset(record) == shape]
        if update:
            columns = [model._meta.get_field(name).name for name in shape]
            model.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["id"],
                update_fields=[
                    *(name for name in columns if name not in KEEP_ON_UPDATE),
                    "djstripe_updated",
                ],
            )
        else:
            model.objects.bulk_create(rows, ignore_conflicts=True)
    for data in slow:
        if update or not model.objects.filter(id=data["id"]).exists():
            model.sync_from_stripe_data(data, api_key=api_key)


def _record(model: StripeModel, data: dict[str, Any], owner: Account | None) -> dict[str, Any] | None:
    """The model's field values for `data` as dj-stripe's `_stripe_object_to_record` maps them,
    relations as `<field>_id`; None when dj-stripe's sync would do more than map fields."""
    if _needs_hooks(model, data):
        return None
    data = model._manipulate_stripe_object_hook(dict(data))
    record: dict[str, Any] = {"stripe_data": data}
    for field in model._meta.get_fields():
        if field.name.startswith("djstripe_") or field.name in IGNORED_FIELDS:
            continue
        if isinstance(field, models.OneToOneRel):
            if data.get(field.name):  # a reverse relation dj-stripe would sync (an intent's invoice)
                return None
            continue
        if isinstance(field, (models.ManyToOneRel, models.ManyToManyRel)) or field.many_to_many:
            continue
        if isinstance(field, models.ForeignKey):
            if field.name in data:
                record[field.attname] = _id_of(data[field.name])
            continue
        value = field.stripe_to_db(data) if hasattr(field, "stripe_to_db") else data.get(field.name)
        if isinstance(field, (models.CharField, models.TextField)) and value is None:
            value = ""
        record[field.name] = value
    record["djstripe_owner_account"] = owner
    return record


def _needs_hooks(model: StripeModel, data: dict[str, Any]) -> bool:
    """Whether dj-stripe's attach hooks would do more than the field mapping for this object."""
    subscriber_key = djstripe_settings.SUBSCRIBER_CUSTOMER_KEY
    metadata = data.get("metadata") or {}
    if model is Customer:
        sources = (data.get("sources") or {}).get("data") or []
        return bool(
            data.get("discount")
            or any(source.get("object") == "source" for source in sources)
            or (subscriber_key and metadata.get(subscriber_key))
        )
    if model is Session:
        return bool(subscriber_key and data.get("customer") and metadata.get(subscriber_key))
    return False


def _with_known_relations(
    model: StripeModel, records: list[Pair], in_page: dict[Any, set[str]]
) -> tuple[list[Pair], list[dict[str, Any]]]:
    """Split the records into those whose related objects are in the page or mirrored, and the
    data of the others (dj-stripe's sync retrieves what they refer to)."""
    missing: set[tuple[str, Any]] = set()
    for field in model._meta.concrete_fields:
        if not isinstance(field, models.ForeignKey) or field.name == "djstripe_owner_account":
            continue
        related = field.related_model
        wanted = {record.get(field.attname) for _, record in records} - {None}
        wanted -= in_page.get(related, set())
        if wanted:
            found = set(related._default_manager.filter(id__in=wanted).values_list("id", flat=True))
            missing |= {(field.attname, stripe_id) for stripe_id in wanted - found}
    if not missing:
        return records, []
    known: list[Pair] = []
    unknown: list[Pair] = []
    for data, record in records:
        refers = {(name, value) for name, value in record.items() if name.endswith("_id")}
        (unknown if refers & missing else known).append((data, record))
    return known, [data for data, _ in unknown]
