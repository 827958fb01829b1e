"""Run the lab's notebooks headless, papermill-style: the cell tagged ``parameters`` keeps
its defaults and a cell inserted after it overrides them. The test suite runs every
notebook this way with small parameters; ``python -m queuelab.lab.notebooks --figures DIR``
regenerates the README's figures, refuses to on a busy machine (its figures would show the
other work, not queuelab's), and writes ``CAPTIONS.md`` beside them: when, where and by
which command each was drawn. Notebooks on disk are never written: they stay committed
without outputs.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "notebooks"
PARAMETERS_TAG = "parameters"
BUSY_LOAD_PER_CORE = 0.5  # above this one-minute load average per core, figures wait
EXIT_BUSY = 3


def inject(notebook: Any, parameters: Mapping[str, Any]) -> Any:
    """Insert a cell assigning ``parameters`` right after the ``parameters`` cell."""
    import nbformat

    cells = notebook.cells
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    if parameters:
        source = "# injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
        cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))  # type: ignore[no-untyped-call]
    return notebook


def execute(
    path: Path, parameters: Mapping[str, Any] | None = None, *, cwd: Path | None = None, timeout: int = 900
) -> Any:
    """Execute a notebook top to bottom in a fresh kernel and return it with its outputs.
    A cell that raises stops the run with ``nbclient.exceptions.CellExecutionError``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = inject(nbformat.read(path, as_version=4), parameters or {})  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    client.execute()
    return notebook


def images(notebook: Any) -> list[str]:
    """The PNG outputs of an executed notebook (base64), in order."""
    return [
        output["data"]["image/png"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def busy(load: float, cores: int) -> str | None:
    """Why figures should not be drawn now, or None: the one-minute load average per core
    says other work is running (this machine's speed moves by 2x with it)."""
    if load / max(cores, 1) <= BUSY_LOAD_PER_CORE:
        return None
    return (
        f"the machine is busy (load average {load:.1f} on {cores} core(s), above {BUSY_LOAD_PER_CORE:g} per core): "
        "figures drawn now would show the other work as much as queuelab; run again when it is quiet, or pass "
        "--allow-busy (the captions then say so)"
    )


def captions(drawn: Mapping[str, list[str]], *, when: datetime, where: str, command: str, note: str = "") -> str:
    """CAPTIONS.md: for each figure, the notebook that drew it, when, where, and the command."""
    lines = [
        "# Figures",
        "",
        f"Drawn {when:%Y-%m-%d %H:%M} UTC on {where} by `{command}`{note}.",
        "",
        "| figure | drawn by |",
        "|---|---|",
    ]
    lines += [f"| `{figure}` | `notebooks/{notebook}` |" for notebook, figures in drawn.items() for figure in figures]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, load: Callable[[], float] = lambda: os.getloadavg()[0]) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuelab.lab.notebooks", description=__doc__)
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all in --dir)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the notebooks are")
    parser.add_argument("--figures", type=Path, help="directory the notebooks save their README figures to")
    parser.add_argument("--allow-busy", action="store_true", help="draw figures even on a busy machine")
    parser.add_argument("--work", type=Path, default=Path("lab-runs"), help="working directory (databases)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (a Python literal)"
    )
    args = parser.parse_args(argv)
    if not args.dir.is_dir():  # installed from a wheel: the notebooks are the repository's, not the package's
        print(
            f"queuelab.lab.notebooks: no notebooks folder at {args.dir} (the notebooks ship with the source "
            "repository, not the package): pass --dir PATH/notebooks",
            file=sys.stderr,
        )
        return 2
    overrides: dict[str, Any] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = ast.literal_eval(value)
    cores, before = os.cpu_count() or 1, load()
    if args.figures:
        reason = busy(before, cores)
        if reason is not None and not args.allow_busy:
            print(f"queuelab.lab.notebooks: {reason}", file=sys.stderr)
            return EXIT_BUSY
    args.work.mkdir(parents=True, exist_ok=True)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        overrides["FIGURES_DIR"] = str(args.figures.resolve())
    paths = [args.dir / n for n in args.names] if args.names else sorted(args.dir.glob("[0-9]*.ipynb"))
    drawn: dict[str, list[str]] = {}
    started = datetime.now(UTC)
    for path in paths:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        stamps = _stamps(args.figures)
        notebook = execute(path, overrides, cwd=args.work)
        drawn[path.name] = sorted(n for n, t in _stamps(args.figures).items() if stamps.get(n) != t)
        print(f"  {len(images(notebook))} figure(s)", file=sys.stderr)
    if args.figures:
        after = load()
        # The load after includes the notebooks' own workers (they keep the cores busy), so
        # only the load before says whether other work was running.
        where = (
            f"{platform.node()} ({cores} cores, load average {before:.1f} before, "
            f"{after:.1f} after, the notebooks' own work included)"
        )
        note = " on a machine busier than figures should be drawn on" if busy(before, cores) else ""
        given = " ".join(["python -m queuelab.lab.notebooks", *(argv or sys.argv[1:])])
        command = "make figures" if os.environ.get("MAKELEVEL") else given
        text = captions(drawn, when=started, where=where, command=command, note=note)
        (args.figures / "CAPTIONS.md").write_text(text)
    return 0


def _stamps(folder: Path | None) -> dict[str, float]:
    """The PNGs in ``folder`` and when each was last written."""
    if folder is None or not folder.exists():
        return {}
    return {p.name: p.stat().st_mtime for p in folder.glob("*.png")}


if __name__ == "__main__":
    sys.exit(main())
