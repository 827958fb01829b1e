"""Run the lab's notebooks headless, papermill-style: the cell tagged ``parameters`` keeps
its defaults and a cell inserted after it overrides them. The test suite runs every
notebook this way with small parameters; ``python -m queuelab.lab.notebooks --figures DIR``
regenerates the README's figures. Notebooks on disk are never written: they stay
committed without outputs.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "notebooks"
PARAMETERS_TAG = "parameters"


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuelab.lab.notebooks", description=__doc__)
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all in --dir)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the notebooks are")
    parser.add_argument("--figures", type=Path, help="directory the notebooks save their README figures to")
    parser.add_argument("--work", type=Path, default=Path("lab-runs"), help="working directory (databases)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (a Python literal)"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = ast.literal_eval(value)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        overrides["FIGURES_DIR"] = str(args.figures.resolve())
    paths = [args.dir / n for n in args.names] if args.names else sorted(args.dir.glob("[0-9]*.ipynb"))
    for path in paths:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        notebook = execute(path, overrides, cwd=args.work)
        print(f"  {len(images(notebook))} figure(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
