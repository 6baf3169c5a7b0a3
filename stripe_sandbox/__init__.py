"""A local fake of Stripe's HTTP API, so the product runs offline in tests and demos.

Why hand-written: Stripe's own mock server (stripe-mock) is a Go binary that cannot be
downloaded here, and no maintained Python fake serves dj-stripe's real code paths.
The core (store, server, signing) is plain Python; only the management commands need Django.
"""

__all__ = ["StripeSandbox"]


def __getattr__(name):
    """Import the server lazily so loading the Django app does not start anything."""
    if name == "StripeSandbox":
        from .server import StripeSandbox

        return StripeSandbox
    raise AttributeError(name)
