"""What a training run keeps between steps and between sessions, for both trainers: the
learning-rate schedule (which may end on a wall-clock limit, so a slow CPU still
finishes its decay), the resumable state file and the CSV log.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable

import torch


def check_options(config_class, values: dict, what: str) -> None:
    """Refuse option names the config dataclass does not have, listing the known ones."""
    known = set(config_class.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        from ..errors import InputError

        raise InputError(f"unknown {what} option(s) {unknown}; known: {sorted(known)}")


def lr_factor(step: int, config, elapsed: float = 0.0) -> float:
    """Warm-up, then cosine decay to 0.1 over the steps or the time limit, whichever
    runs out first (`config` has warmup, steps, time_limit_minutes)."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    if config.time_limit_minutes:
        progress = max(progress, elapsed / (60 * config.time_limit_minutes))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class RunState:
    """Step count, history, validations and training time of a run, saved to and resumed
    from `out/state.pt` together with the objects that carry state (model, optimiser,
    scheduler, scaler) under the names given to `parts`."""

    def __init__(self, out: Path, optimizer: torch.optim.Optimizer, config) -> None:
        self.path = Path(out) / "state.pt"
        self.start = 0
        self.history: list[dict] = []
        self.validations: list[dict] = []
        self._before = 0.0
        self._began = time.perf_counter()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config, self.elapsed()))

    def elapsed(self) -> float:
        """Seconds of training so far, earlier sessions included."""
        return self._before + time.perf_counter() - self._began

    def restart_clock(self) -> None:
        self._began = time.perf_counter()

    def resume(self, parts: dict, progress: Callable[[str], None]) -> bool:
        if not self.path.is_file():
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        for name, part in {**parts, "scheduler": self.scheduler}.items():
            part.load_state_dict(state[name])
        self.start, self.history, self.validations = state["step"], state["history"], state["validations"]
        self._before = float(sum(r["seconds"] for r in self.history))
        progress(f"resumed at step {self.start}")
        return True

    def save(self, step: int, parts: dict, **extra) -> None:
        state = {name: part.state_dict() for name, part in {**parts, "scheduler": self.scheduler}.items()}
        torch.save({**state, "step": step, "history": self.history, "validations": self.validations, **extra}, self.path)


def write_log(path: Path, history: list[dict]) -> None:
    """Every step's row (loss terms, learning rate, seconds) as CSV."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
