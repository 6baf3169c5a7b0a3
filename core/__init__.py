"""Small shared infrastructure: no models, imports no app (queue, retry, locks, money)."""
