"""Benchmarks kept as standalone modules (`bench/bench_*.py`), each with `run(quick)`.

Such a module returns its figures as dicts with the fields of `results.Figure` (`target` as
the fields of `results.Target` or None) plus an optional `note`; this turns them into a
section of the report. Its docstring's first paragraph becomes the section's method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from harness import Context
from results import Figure, Section, Target


def _figure(raw: dict[str, Any]) -> Figure:
    target = raw.get("target")
    return Figure(
        name=raw["name"],
        unit=raw["unit"],
        values=[float(v) for v in raw["values"]],
        baseline_name=raw.get("baseline_name", ""),
        baseline_values=[float(v) for v in raw.get("baseline_values", [])],
        target=Target(**target) if target else None,
    )


def _summary(docstring: str | None) -> str:
    """The docstring's first paragraph, on one line."""
    first = (docstring or "").strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in first.splitlines())


def module_benchmark(name: str, module: str, title: str) -> Callable[[Context], Section]:
    """A benchmark function (named `name`) running `module.run(quick)`."""

    def benchmark(ctx: Context) -> Section:
        loaded = importlib.import_module(module)
        raw_figures = loaded.run(ctx.sizes.quick)
        section = Section(title, f"`bench/{module}.py`: {_summary(loaded.__doc__)}")
        section.figures = [_figure(raw) for raw in raw_figures]
        notes = [raw["note"] for raw in raw_figures if raw.get("note")]
        section.notes = list(dict.fromkeys(notes))
        return section

    benchmark.__name__ = benchmark.__qualname__ = name
    return benchmark
