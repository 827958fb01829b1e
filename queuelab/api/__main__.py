"""``python -m queuelab.api``: the server (:mod:`queuelab.api.command`), once the api
extra is known to be installed; without it, one line naming the extra, and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from queuelab.errors import MissingExtra
from queuelab.extras import API, require


def run(argv: Sequence[str] | None = None) -> int:
    try:
        require(API, extra="api", feature="python -m queuelab.api")
    except MissingExtra as exc:
        print(f"queuelab.api: error: {exc}", file=sys.stderr)
        return 2
    from queuelab.api.command import main

    return main(argv)


if __name__ == "__main__":
    raise SystemExit(run())
