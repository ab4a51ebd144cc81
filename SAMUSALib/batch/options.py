"""Command-line options shared by the batch commands; kept free of heavy imports, since
``samusa --help`` builds every parser."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser, *, title: str, workers_help: str, resume: bool = True) -> None:
    """--workers, --scheduler, --timeout (and --force where outputs are skipped when up to date)."""
    group = parser.add_argument_group(title)
    group.add_argument("--workers", type=int, default=None, help=workers_help)
    group.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786) instead of a LocalCluster")
    if resume:
        group.add_argument("--force", action="store_true", help="segment every case again, even those whose output is up to date")
    group.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up on the whole batch after this long")


def default_workers(cases: int) -> int:
    return max(1, min(os.cpu_count() or 1, cases))
