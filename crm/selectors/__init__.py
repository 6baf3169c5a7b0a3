"""crm's reads: clients (timeline, Stripe links), search (admin searches), dashboard (figures)."""
