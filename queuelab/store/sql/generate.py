"""``python -m queuelab.store.sql``: rewrite the committed SQL files, or ``--check`` them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from queuelab.store.sql.catalogue import BOTH, REGENERATE, expected

HERE = Path(__file__).resolve().parent


def stale(directory: Path = HERE) -> dict[str, str]:
    """Each file under ``directory`` that is not what the statements compile to now, and
    why: ``differs``, ``missing``, or ``not generated any more``."""
    want = expected()
    found: dict[str, str] = {}
    for path, text in want.items():
        on_disk = directory / path
        if not on_disk.exists():
            found[path] = "missing"
        elif on_disk.read_text(encoding="utf-8") != text:
            found[path] = "differs"
    for path in _committed(directory) - want.keys():
        found[path] = "not generated any more"
    return dict(sorted(found.items()))


def write(directory: Path = HERE) -> dict[str, str]:
    """Bring ``directory`` up to date: write the stale files, remove the orphans; return
    what was stale, as :func:`stale` does."""
    changed = stale(directory)
    want = expected()
    for path in changed:
        if path in want:
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_text(want[path], encoding="utf-8", newline="\n")
        else:
            (directory / path).unlink()
    return changed


def _committed(directory: Path) -> set[str]:
    return {f"{name}/{path.name}" for name in BOTH for path in (directory / name).glob("*.sql")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuelab.store.sql", description=__doc__)
    parser.add_argument("--check", action="store_true", help="list the stale files and exit 1 if any; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        found = stale()
        for path, why in found.items():
            print(f"{HERE / path}: {why}", file=sys.stderr)
        if found:
            print(f"{len(found)} stale SQL file(s); regenerate with `{REGENERATE}`", file=sys.stderr)
        return 1 if found else 0
    changed = write()
    for path, why in changed.items():
        print(f"{'removed' if why == 'not generated any more' else 'wrote'} {HERE / path} ({why})")
    if not changed:
        print(f"the SQL files in {HERE} are up to date")
    return 0
