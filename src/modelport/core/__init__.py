"""Cross-cutting basics every layer may import: errors, names, settings."""
