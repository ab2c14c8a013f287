"""Published tables: Markdown (and PNG) files built from a results store, named by a suite's ``report:``.

``report.md`` (:mod:`promptlearning.bench.report`) is the same four metrics for every store;
a published table is the view one study needs (the SPT comparison, the held-out-task
summary, the prompt-search table). A suite lists its tables::

    report:
      - {table: spt, out: ../results/spt.md}

and ``promptlearning report`` rebuilds them from the stored rows alone, so every published
number regenerates without running anything. One module per table, one line in
:data:`TABLES`; each module has ``write(rows, out, entry, suite) -> list[Path]`` where ``rows``
are the store's done rows (config and result decoded), ``entry`` the report entry and ``suite``
the name of the suite that lists it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

#: table name -> module under promptlearning.bench.tables
TABLES = {
    "spt": "spt",                          # SPT against fixed layer choices (benchmarks/results/spt.md)
    "heldout_summary": "heldout_summary",  # cross-task methods on held-out tasks (meta_loto.md, meta_cross_domain.md)
    "prompt_search": "prompt_search",      # search strategies, the hybrid and transfer (prompt_search.md)
}
ENTRY_KEYS = ("table", "out", "produced_by")


def write_table(entry: dict[str, Any], rows: list[dict[str, Any]], suite_file: Path, suite: str) -> list[Path]:
    """Build one report entry of a suite (``out`` is relative to the suite file); returns the files written."""
    module = importlib.import_module(f"promptlearning.bench.tables.{TABLES[entry['table']]}")
    out = (suite_file.parent / str(entry["out"])).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = module.write(rows, out, entry, suite)
    return written
