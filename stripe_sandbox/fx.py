"""A deterministic FX table: the rate between two currencies depends only on the pair and the UTC day.

Settlement works like Stripe's: a charge, refund or dispute in a presentment currency other than the
account's settlement currency is converted at the rate of the day it happens, so a refund a few days
after its charge settles at a different rate. `exchange_rate` is quoted the way balance transactions
quote it: amount in the source currency (major units) x rate = amount in the settlement currency.
"""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)

# Value of one major unit in USD on the table's reference day (roughly real, fixed forever).
USD_VALUE = {
    "usd": Decimal("1"),
    "eur": Decimal("1.08"),
    "gbp": Decimal("1.27"),
    "chf": Decimal("1.12"),
    "cad": Decimal("0.73"),
    "aud": Decimal("0.66"),
    "sek": Decimal("0.095"),
    "nok": Decimal("0.093"),
    "dkk": Decimal("0.145"),
    "pln": Decimal("0.25"),
    "jpy": Decimal("0.0067"),
    "krw": Decimal("0.00075"),
}

RATE_PLACES = Decimal("0.000001")
_SWING = 41  # daily wobble of each currency against USD: -2.0% .. +2.0% in 0.1% steps


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (0 for jpy)."""
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def day_of(timestamp: int) -> int:
    """The UTC day number (proleptic ordinal) a unix timestamp falls on."""
    return datetime.fromtimestamp(int(timestamp), UTC).date().toordinal()


def _usd_value(currency: str, day: int) -> Decimal:
    currency = currency.lower()
    seed = sum(ord(char) * (index + 1) for index, char in enumerate(currency))
    base = USD_VALUE.get(currency)
    if base is None:
        # Unknown currencies still get a stable value, so any 3-letter code works.
        base = Decimal(50 + seed % 150) / 100
    if currency == "usd":
        return base
    wobble = Decimal((day * 7 + seed) % _SWING - _SWING // 2) / 1000
    return base * (1 + wobble)


def rate(source: str, target: str, timestamp: int) -> Decimal | None:
    """The rate from `source` to `target` on the day of `timestamp`; None for the same currency."""
    if source.lower() == target.lower():
        return None
    day = day_of(timestamp)
    return (_usd_value(source, day) / _usd_value(target, day)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def convert_at(amount: int, source: str, target: str, fx_rate: Decimal | None) -> int:
    """Convert minor units with a given rate (half-up to the target's minor unit)."""
    if fx_rate is None:
        return int(amount)
    major = Decimal(int(amount)).scaleb(-exponent(source))
    converted = (major * fx_rate).scaleb(exponent(target))
    return int(converted.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def convert(amount: int, source: str, target: str, timestamp: int) -> tuple[int, Decimal | None]:
    """Return (amount in `target` minor units, rate used) for the day of `timestamp`."""
    fx_rate = rate(source, target, timestamp)
    return convert_at(amount, source, target, fx_rate), fx_rate
