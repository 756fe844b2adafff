"""``python -m modelport`` is the CLI."""

from modelport.cli.main import main

if __name__ == "__main__":  # instance processes are spawned and import this module again as __mp_main__
    main()
