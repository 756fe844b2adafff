"""The model and environment registries: immutable, integer-versioned assets over ``store``."""
