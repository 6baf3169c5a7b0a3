"""In-memory object store with a per-type, per-mode index sorted by `created`.

Lists are served newest first straight from the index, so a page costs O(log n + page size)
for unfiltered queries (a 10,000-session backfill must not re-sort on every request).
Filters other than `created` are applied while walking the index.
"""

import itertools
import threading
from bisect import bisect_left
from collections.abc import Callable

from .errors import resource_missing

# Sentinel sequence bounds: ties on `created` are broken by insertion order.
_LOWEST = -1
_HIGHEST = float("inf")


class SortedIndex:
    """Object ids ordered by (created, insertion sequence)."""

    def __init__(self):
        self._keys: list[tuple[int, int]] = []
        self._ids: list[str] = []
        self._key_of: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, object_id: str, created: int, sequence: int) -> None:
        """Insert an id; appending (the usual case, ids arrive in time order) is O(1)."""
        key = (created, sequence)
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
            self._ids.append(object_id)
        else:
            position = bisect_left(self._keys, key)
            self._keys.insert(position, key)
            self._ids.insert(position, object_id)
        self._key_of[object_id] = key

    def position(self, object_id: str) -> int | None:
        """Return the ascending position of an id, or None if it is not indexed."""
        key = self._key_of.get(object_id)
        return None if key is None else bisect_left(self._keys, key)

    def bounds(self, created: dict) -> tuple[int, int]:
        """Return the [lo, hi) ascending positions whose `created` satisfies gte/gt/lte/lt."""
        lo, hi = 0, len(self._keys)
        if "gte" in created:
            lo = max(lo, bisect_left(self._keys, (created["gte"], _LOWEST)))
        if "gt" in created:
            lo = max(lo, bisect_left(self._keys, (created["gt"], _HIGHEST)))
        if "lte" in created:
            hi = min(hi, bisect_left(self._keys, (created["lte"], _HIGHEST)))
        if "lt" in created:
            hi = min(hi, bisect_left(self._keys, (created["lt"], _LOWEST)))
        return lo, max(lo, hi)

    def id_at(self, position: int) -> str:
        """Return the id at an ascending position."""
        return self._ids[position]


class ObjectStore:
    """Holds every object by type and id; all access goes through `lock`."""

    def __init__(self, settlement_currency: str = "usd"):
        self.lock = threading.RLock()
        # The account's settlement currency: every balance transaction is in it (see settlement.py).
        self.settlement_currency = settlement_currency
        self._objects: dict[str, dict[str, dict]] = {}
        self._indexes: dict[tuple[str, bool], SortedIndex] = {}
        self._sequence = itertools.count()
        self.line_items: dict[str, list[dict]] = {}
        # (livemode, service id, currency, amount[, interval]) -> price id, so seeded checkouts share prices.
        self.service_prices: dict[tuple, str] = {}
        # Parent id (session, checkout item) -> [(discount id, amount)]: discounts have no list endpoint.
        self.discount_links: dict[str, list[tuple[str, int]]] = {}
        # Session id -> checkout options Stripe does not show on the session (trial days).
        self.session_options: dict[str, dict] = {}

    def clear(self) -> None:
        """Forget every object."""
        with self.lock:
            self._objects.clear()
            self._indexes.clear()
            self.line_items.clear()
            self.service_prices.clear()
            self.discount_links.clear()
            self.session_options.clear()

    def add(self, obj: dict, created: int | None = None) -> dict:
        """Store an object (indexed under its type and livemode) and return it.

        `created` indexes an object that has no `created` field (payment links), so it can be listed.
        """
        with self.lock:
            object_type = obj["object"]
            self._objects.setdefault(object_type, {})[obj["id"]] = obj
            created = obj.get("created", created)
            if created is not None:
                index = self._indexes.setdefault((object_type, bool(obj.get("livemode"))), SortedIndex())
                index.add(obj["id"], created, next(self._sequence))
            return obj

    def all(self, object_type: str) -> list[dict]:
        """Every stored object of a type (both modes), in the order they were stored."""
        with self.lock:
            return list(self._objects.get(object_type, {}).values())

    def replace(self, obj: dict) -> dict:
        """Swap the stored object for `obj` (same id) without re-indexing it."""
        with self.lock:
            self._objects[obj["object"]][obj["id"]] = obj
            return obj

    def get(self, object_type: str, object_id: str) -> dict | None:
        """Return the stored object or None."""
        return self._objects.get(object_type, {}).get(object_id)

    def require(
        self, object_type: str, object_id: str, livemode: bool | None = None, param: str = "id"
    ) -> dict:
        """Return the object visible to a key of the given mode, or raise Stripe's 404."""
        obj = self.get(object_type, object_id)
        if obj is None:
            raise resource_missing(object_type, object_id, param=param)
        if livemode is not None and "livemode" in obj and obj["livemode"] != livemode:
            # Stripe's wording; dj-stripe recognises "a similar object exists in".
            hint = (
                "; a similar object exists in live mode, but a test mode key was used to make this request."
                if obj["livemode"]
                else "; a similar object exists in test mode, "
                "but a live mode key was used to make this request."
            )
            raise resource_missing(object_type, object_id, hint=hint, param=param)
        return obj

    def count(self, object_type: str) -> int:
        """Return how many objects of a type are stored (both modes)."""
        return len(self._objects.get(object_type, {}))

    def page(
        self,
        object_type: str,
        livemode: bool,
        *,
        limit: int,
        created: dict | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        predicate: Callable[[dict], bool] | None = None,
    ) -> tuple[list[dict], bool]:
        """Return one newest-first page and whether more objects follow in that direction."""
        index = self._indexes.get((object_type, livemode))
        if index is None:
            return [], False
        objects = self._objects[object_type]
        lo, hi = index.bounds(created or {})
        if ending_before:
            # The page just newer than the cursor: walk upwards, then present newest first.
            positions = range(max(lo, self._cursor(index, ending_before, "ending_before") + 1), hi)
        else:
            start = (
                hi if not starting_after else min(hi, self._cursor(index, starting_after, "starting_after"))
            )
            positions = range(start - 1, lo - 1, -1)
        found = []
        for position in positions:
            obj = objects[index.id_at(position)]
            if predicate is None or predicate(obj):
                found.append(obj)
                if len(found) > limit:
                    break
        has_more = len(found) > limit
        found = found[:limit]
        if ending_before:
            found.reverse()
        return found, has_more

    def _cursor(self, index: SortedIndex, object_id: str, param: str) -> int:
        position = index.position(object_id)
        if position is None:
            raise resource_missing("object", object_id, param=param)
        return position
