"""Amounts are stored in Stripe's minor units; this turns them into what people read."""

from decimal import Decimal

from djstripe.settings import djstripe_settings

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def minor_to_major(amount: int, currency: str) -> Decimal:
    """12345 usd → Decimal('123.45'); 1234 jpy → Decimal('1234') (zero-decimal currency)."""
    if currency.lower() in djstripe_settings.ZERO_DECIMAL_CURRENCIES:
        return Decimal(amount)
    return Decimal(amount) / 100


def format_money(amount: int | None, currency: str) -> str:
    """Human form with the currency, e.g. "$123.45", "¥1,234", "123.45 CHF"."""
    if amount is None or not currency:
        return "—"
    major = minor_to_major(amount, currency)
    places = 0 if currency.lower() in djstripe_settings.ZERO_DECIMAL_CURRENCIES else 2
    number = f"{major:,.{places}f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"
