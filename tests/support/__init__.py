"""Helpers the tests share (conftest.py keeps only fixtures): `pipeline` (signed deliveries, the worker's
loop), `staff` (staff users by role), `processes` (the project's commands as real processes)."""
