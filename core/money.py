"""Amounts are stored in Stripe's minor units; this turns them into what people read (babel, en_US)."""

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision
from djstripe.settings import djstripe_settings

LOCALE = "en_US"


def minor_unit_digits(currency: str) -> int:
    """Decimal places in Stripe's minor unit: 0 for Stripe's zero-decimal currencies (JPY), else
    CLDR's precision but at least 2 (Stripe sends ISK and UGX in hundredths; KWD in thousandths)."""
    if currency.lower() in djstripe_settings.ZERO_DECIMAL_CURRENCIES:
        return 0
    return max(2, get_currency_precision(currency.upper()))


def minor_to_major(amount: int, currency: str) -> Decimal:
    """12345 usd → Decimal('123.45'); 1234 jpy → Decimal('1234') (zero-decimal currency)."""
    return Decimal(amount).scaleb(-minor_unit_digits(currency))


def format_money(amount: int | None, currency: str, *, whole_without_decimals: bool = False) -> str:
    """Human form with the currency, e.g. "$123.45", "¥1,234", "CHF123.45"; "—" for no amount.

    `whole_without_decimals` writes whole amounts as "$1,500" (chart axes).
    """
    if amount is None or not currency:
        return "—"
    major = minor_to_major(amount, currency)
    if whole_without_decimals and major == major.to_integral_value():
        return format_currency(major, currency.upper(), "¤#,##0", locale=LOCALE, currency_digits=False)
    return format_currency(major, currency.upper(), locale=LOCALE)
