"""The Stripe edge: webhook view, StripeWebhookJob and its processing, endpoints, client settings.

Imports only core, dj-stripe, Django and stripe; the business reacts through dj-stripe's signals
(and `signals.webhook_job_requeued`), never by being called from here.
"""
