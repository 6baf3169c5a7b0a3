"""crm's write side: plain keyword-only functions by concern; import them from their module.

onboarding (the state machine), emails (the welcome email step), workspace_step (the workspace
step), staff (what staff do from the admin), activity (the client's timeline).
"""
