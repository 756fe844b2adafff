"""The web dashboard the daemon serves under ``/ui/``: server-rendered pages over the same
registry and management API views the CLI prints, behind a session cookie (``control.sessions``)."""
