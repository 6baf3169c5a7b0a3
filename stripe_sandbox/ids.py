"""Stripe-looking object ids (`cus_…`, `cs_test_…`, `pi_3…`) and small random tokens."""

import base64
import random
import string

_ALPHABET = string.ascii_letters + string.digits
# base64 output is alphanumeric except "+" and "/": mapping those two keeps ids alphanumeric.
_ALNUM_FROM_BASE64 = str.maketrans("+/", "xZ")

# Prefix and random-part length per object, matching the lengths of real Stripe ids.
_FORMATS = {
    "account": ("acct_1", 15),
    "balance_transaction": ("txn_3", 23),
    "charge": ("ch_3", 23),
    "customer": ("cus_", 14),
    "discount": ("di_1", 23),
    "dispute": ("du_1", 23),
    "event": ("evt_1", 23),
    "invoice": ("in_1", 23),
    "invoice_line": ("il_1", 23),
    "invoice_payment": ("inpay_1", 23),
    "invoiceitem": ("ii_1", 23),
    "item": ("li_1", 23),
    "payment_intent": ("pi_3", 23),
    "payment_link": ("plink_1", 23),
    "payment_method": ("pm_1", 23),
    "price": ("price_1", 23),
    "product": ("prod_", 14),
    "promotion_code": ("promo_1", 23),
    "refund": ("re_3", 23),
    "request": ("req_", 14),
    "subscription": ("sub_1", 23),
    "subscription_item": ("si_", 14),
    "webhook_endpoint": ("we_1", 23),
}


class IdFactory:
    """Generates ids; unseeded by default so ids never collide across sandbox restarts."""

    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)

    def token(self, length: int, alphabet: str = _ALPHABET) -> str:
        """Return a random string of `length` characters (alphanumerics take a fast path for seeding)."""
        if alphabet is _ALPHABET:
            raw = base64.b64encode(self._random.randbytes(length * 3 // 4 + 3)).decode()
            return raw.translate(_ALNUM_FROM_BASE64)[:length]
        return "".join(self._random.choices(alphabet, k=length))

    def new(self, object_type: str, livemode: bool = False) -> str:
        """Return a fresh id for `object_type`."""
        if object_type == "checkout.session":
            mode = "live" if livemode else "test"
            return f"cs_{mode}_a1{self.token(56)}"
        prefix, length = _FORMATS[object_type]
        return prefix + self.token(length)

    def coupon_code(self) -> str:
        """Return a coupon id like Stripe generates (8 uppercase letters and digits)."""
        return self.token(8, string.ascii_uppercase + string.digits)

    def webhook_secret(self) -> str:
        """Return a `whsec_…` signing secret."""
        return "whsec_" + self.token(32)

    def fingerprint(self) -> str:
        """Return a card fingerprint."""
        return self.token(16)

    def hex_upper(self, length: int) -> str:
        """Return an uppercase hex string (invoice prefixes)."""
        return self.token(length, "0123456789ABCDEF")
