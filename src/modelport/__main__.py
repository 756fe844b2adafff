"""``python -m modelport`` is the CLI."""

from modelport.cli.main import main

main()
