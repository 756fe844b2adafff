#!/usr/bin/env python3
"""Write the JSON Schemas of the published definitions into docs/schemas/.

    python scripts/gen_schemas.py           rewrite docs/schemas/NAME.json for each definition
    python scripts/gen_schemas.py --check   exit 1 when a file differs from what the models give

Run it after changing a definition model (``modelport.schema``): the files are what editors
point ``$schema`` at, and a test fails while they lag behind the models. Each file is exactly
``modelport schema NAME``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from modelport.schema.published import PUBLISHED, json_schema, render  # noqa: E402 - after the path

TARGET = ROOT / "docs" / "schemas"


def expected() -> dict[Path, str]:
    """Each published file and the text it must hold."""
    return {TARGET / f"{name}.json": render(json_schema(name)) for name in PUBLISHED}


def check() -> list[str]:
    """What differs between docs/schemas/ and the models (empty: they match)."""
    files = expected()
    problems = [
        f"{path.relative_to(ROOT)}: differs from the model"
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    stale = sorted(set(TARGET.glob("*.json")) - set(files))
    problems += [f"{path.relative_to(ROOT)}: no published definition has this name" for path in stale]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for problem in problems:
            print(f"{problem}; run scripts/gen_schemas.py", file=sys.stderr)
        return 1 if problems else 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for path, text in expected().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
