"""The control plane: endpoint definitions and their storage, and the daemon that serves them
(management API, router, replica supervisor)."""
