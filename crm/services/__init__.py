"""crm's write side: plain keyword-only functions by concern; import them from their module.

onboarding (the state machine), emails (the welcome email step), workspace_step (the workspace
step), email_tracking (the ESP's delivery reports), ledger (money movements and the client's value),
invoices (paid invoices), lifecycle (offboarding, reactivation, at risk), staff (what staff do from the
admin), client_email, alerts (staff alerts), activity (the client's timeline).
"""
