"""In-process fakes of third-party services, speaking their real wire protocols."""
