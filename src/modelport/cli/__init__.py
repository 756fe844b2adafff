"""The ``modelport`` command line: parse, call the SDK, render. No business logic lives here."""
