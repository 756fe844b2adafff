"""Every definition users write or the system stores, as typed pydantic models (see :mod:`.base`)."""
