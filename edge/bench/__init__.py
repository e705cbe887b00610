"""`lineside bench`'s measurement library: where every millisecond of an inspection goes.

`run_bench(BenchOptions(...))` returns a BenchReport; `render` turns it into the one table.
"""

from __future__ import annotations

from edge.bench.report import BenchReport
from edge.bench.runner import BenchOptions, run_bench
from edge.bench.table import render

__all__ = ["BenchOptions", "BenchReport", "render", "run_bench"]
