"""Money as people read it: format_money keeps babel's format_currency text, parsed once."""

from babel.numbers import format_currency
from hypothesis import given
from hypothesis import strategies as st

from core.money import LOCALE, WHOLE_PATTERN, format_money, minor_to_major

CURRENCIES = ["usd", "eur", "gbp", "jpy", "chf", "kwd", "isk", "ugx", "cad"]


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(CURRENCIES), st.booleans())
def test_format_money_is_babels_format_currency(amount, currency, whole):
    major, code = minor_to_major(amount, currency), currency.upper()
    if whole and major == major.to_integral_value():
        expected = format_currency(major, code, WHOLE_PATTERN, locale=LOCALE, currency_digits=False)
    else:
        expected = format_currency(major, code, locale=LOCALE)

    assert format_money(amount, currency, whole_without_decimals=whole) == expected


def test_examples():
    assert format_money(12345, "usd") == "$123.45"
    assert format_money(1234, "jpy") == "¥1,234"
    assert format_money(150_000, "usd", whole_without_decimals=True) == "$1,500"
    assert format_money(None, "usd") == format_money(5, "") == "—"
