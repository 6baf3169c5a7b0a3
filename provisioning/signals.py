"""What provisioning tells the rest of the project, without importing it."""

from django.dispatch import Signal

# A workspace became ready or failed outside the run that asked for it (e.g. a backend's callback),
# or inside it; kwargs: workspace. Sent after the row is saved.
workspace_changed = Signal()
