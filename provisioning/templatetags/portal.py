from django import template

from core.money import format_money

register = template.Library()


@register.filter
def money(amount: int, currency: str) -> str:
    """`{{ payment.amount|money:payment.currency }}` → "$123.45", "¥1,234"."""
    return format_money(amount, currency)
