"""Amounts are stored in Stripe's minor units; this turns them into what people read (babel, en_US)."""

from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberPattern, get_currency_precision, parse_pattern
from djstripe.settings import djstripe_settings

LOCALE = "en_US"
# Chart axes: whole amounts without decimals.
WHOLE_PATTERN = "¤#,##0"


def minor_unit_digits(currency: str) -> int:
    """Decimal places in Stripe's minor unit: 0 for Stripe's zero-decimal currencies (JPY), else
    CLDR's precision but at least 2 (Stripe sends ISK and UGX in hundredths; KWD in thousandths)."""
    return _minor_unit_digits(currency.lower())


@lru_cache(maxsize=512)
def _minor_unit_digits(currency: str) -> int:
    if currency in djstripe_settings.ZERO_DECIMAL_CURRENCIES:
        return 0
    return max(2, get_currency_precision(currency.upper()))


def minor_to_major(amount: int, currency: str) -> Decimal:
    """12345 usd → Decimal('123.45'); 1234 jpy → Decimal('1234') (zero-decimal currency)."""
    return Decimal(amount).scaleb(-minor_unit_digits(currency))


@lru_cache(maxsize=2)
def _patterns(locale_name: str) -> tuple[Locale, NumberPattern, NumberPattern]:
    """The locale and its currency patterns, parsed once: babel's format_currency parses them on
    every call, which was most of the dashboard's revenue chart (hundreds of amounts) time."""
    locale = Locale.parse(locale_name)
    return locale, locale.currency_formats["standard"], parse_pattern(WHOLE_PATTERN)


def format_money(amount: int | None, currency: str, *, whole_without_decimals: bool = False) -> str:
    """Human form with the currency, e.g. "$123.45", "¥1,234", "CHF123.45"; "—" for no amount.

    `whole_without_decimals` writes whole amounts as "$1,500" (chart axes). The same text as
    babel's format_currency(major, CODE, locale=LOCALE) (with WHOLE_PATTERN and currency_digits=False).
    """
    if amount is None or not currency:
        return "—"
    major = minor_to_major(amount, currency)
    locale, standard, whole = _patterns(LOCALE)
    if whole_without_decimals and major == major.to_integral_value():
        text: str = whole.apply(major, locale, currency=currency.upper(), currency_digits=False)
    else:
        text = standard.apply(major, locale, currency=currency.upper())
    return text
