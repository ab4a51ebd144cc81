"""What a training run keeps between steps and between sessions, for both trainers: the
learning-rate schedule (which may end on a wall-clock limit, so a slow CPU still
finishes its decay), the resumable state file and the CSV log.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch


#: What a value of each annotated type may be (bool is not an int here: `steps: true` is a mistake).
_TYPES = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "dict": lambda v: isinstance(v, dict),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "list[float]": lambda v: isinstance(v, list) and all(_TYPES["float"](x) for x in v),
}
#: Options that must be positive (> 0), and those that must not be negative.
_POSITIVE = ("batch", "lr", "accumulate", "log_every", "validate_every")
_NOT_NEGATIVE = ("steps", "validate_images", "warmup", "weight_decay", "corrections", "min_points", "max_points",
                 "augmented_copies", "boundary_embedding_lr", "jitter", "box_noise")
_SHARES = ("holdout", "no_history", "sequence", "settle", "boundary_box_drop", "video_fraction")


def check_options(config_class, values: dict, what: str) -> None:
    """Refuse option names the config dataclass does not have (listing the known ones), and
    values of the wrong type or range, naming the option: before any data is read. A wrong
    type used to fail as a traceback from deep inside training, some after the data had
    been embedded (`steps: abc` twenty minutes in)."""
    from ..errors import InputError

    fields = config_class.__dataclass_fields__
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"unknown {what} option(s) {unknown}; known: {sorted(fields)}")
    for name, value in values.items():
        kind = str(fields[name].type).replace(" ", "")
        optional = kind.endswith("|None")
        kind = kind.removesuffix("|None")
        if value is None and optional:
            continue
        if value is None and kind.startswith("list"):  # every entry commented out under `validate:`
            values[name] = []
            continue
        check = _TYPES.get(kind)
        if check is not None and not check(value):
            hint = f"; write it as a list: [{value}]" if kind.startswith("list") and isinstance(value, str) else ""
            raise InputError(f"{what} option `{name}` must be {_type_words(kind)}; got {value!r}{hint}")
        if name in _POSITIVE and value <= 0:
            raise InputError(f"{what} option `{name}` must be above 0; got {value!r}")
        if name in _NOT_NEGATIVE and value < 0:
            raise InputError(f"{what} option `{name}` must not be negative; got {value!r}")
        if name in _SHARES and not (0 <= value < 1 if name == "holdout" else 0 <= value <= 1):
            raise InputError(f"{what} option `{name}` is a share: between 0 and 1; got {value!r}")
    if "boundary_loss" in values:
        from .losses import BoundaryLossConfig

        bad = sorted(set(values["boundary_loss"]) - set(BoundaryLossConfig.__dataclass_fields__))
        if bad:
            raise InputError(f"{what} option `boundary_loss` does not take {bad}; it takes "
                             f"{sorted(BoundaryLossConfig.__dataclass_fields__)}")
        try:
            BoundaryLossConfig(**values["boundary_loss"])
        except (TypeError, ValueError) as error:
            raise InputError(f"{what} option `boundary_loss`: {error}") from None
    if "modes" in values:
        from .sampling import MODES

        bad = sorted(set(values["modes"]) - set(MODES))
        if bad:  # a misspelt mode was never trained, without a word
            raise InputError(f"{what} option `modes`: {bad} unknown; choose from {list(MODES)}")
        if not all(_TYPES["float"](w) and w >= 0 for w in values["modes"].values()) or not sum(values["modes"].values()):
            raise InputError(f"{what} option `modes` takes weights of 0 or more, not all 0; got {values['modes']!r}")


def _type_words(kind: str) -> str:
    return {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text",
            "dict": "a mapping (key: value)", "list[str]": "a list of text", "list[float]": "a list of numbers"}.get(kind, kind)


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
        self.config = config
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
        from ..errors import InputError

        if not self.path.is_file():
            return False
        fix = "delete it to start the run again, or set `resume: false`"
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
            raise InputError(f"{self.path} cannot be read ({type(error).__name__}): it is damaged; {fix}") from None
        missing = [name for name in [*parts, "scheduler", "step"] if not isinstance(state, dict) or name not in state]
        if missing:
            raise InputError(f"{self.path} was written by another trainer (it has no {', '.join(missing)}): give this "
                             f"run another `out:`, or {fix}")
        changed = _changed_options(state.get("config"), _options(self.config))
        if changed:  # resumed silently, and the saved weights then misstated their training
            raise InputError(
                f"the config differs from the run in {self.path.parent} in {'; '.join(changed)}: give this config "
                f"another `out:`, or restore those options to continue the run (or set `resume: false` to start it again)"
            )
        for name, part in {**parts, "scheduler": self.scheduler}.items():
            part.load_state_dict(state[name])
        self.start, self.history, self.validations = state["step"], state["history"], state["validations"]
        self._before = float(sum(r["seconds"] for r in self.history))
        progress(f"resumed at step {self.start}")
        return True

    def save(self, step: int, parts: dict, **extra) -> None:
        """Written beside and renamed into place: a Ctrl-C during the write left a 668-byte
        state.pt, the only resume file, in place of the last good one."""
        state = {name: part.state_dict() for name, part in {**parts, "scheduler": self.scheduler}.items()}
        state.update(step=step, history=self.history, validations=self.validations, config=_options(self.config), **extra)
        partial = self.path.with_name(f".{self.path.name}.partial")
        torch.save(state, partial)
        os.replace(partial, self.path)


#: Options a resumed run may change: how long it runs and how it reports, not what it learns.
_MAY_CHANGE = {"steps", "time_limit_minutes", "validate_every", "log_every", "threads", "resume", "out", "cache",
               "config_file", "tensorboard", "progress_bar", "device", "validate", "validate_images", "validate_clicks",
               "weights_id", "role"}


def _options(config) -> dict:
    """The options that decide what a run learns, paths by their last part (a config run
    from another folder names the same data differently)."""
    options = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    out = {}
    for key, value in options.items():
        if key in _MAY_CHANGE:
            continue
        if key in ("train", "train_videos", "validate") and isinstance(value, list):
            value = [Path(str(v)).name for v in value]
        elif key == "init" and isinstance(value, str):
            value = Path(value).name
        out[key] = value
    return out


def _changed_options(saved: dict | None, now: dict) -> list[str]:
    if not saved:
        return []  # a state saved before configs were kept: nothing to compare
    saved = _options(saved)  # states saved by older SAMUSA kept every option, paths whole
    return [f"{key} ({saved.get(key)!r} -> {now.get(key)!r})" for key in sorted(set(saved) | set(now))
            if saved.get(key) != now.get(key)]


def write_log(path: Path, history: list[dict]) -> None:
    """Every step's row (loss terms, learning rate, seconds) as CSV."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
