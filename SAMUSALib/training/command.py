"""``samusa train CONFIG.yaml``: one command for both trainers.

The config's ``model:`` picks the loop: ``samusa-lite`` / ``litemedsam`` train SAMUSA-Lite
on the CPU (`lite`); anything else is a SAM2 model id or checkpoint (`sam2`). Keys given
on the command line as ``key=value`` override the file (``steps=20 out=runs/try``).
Under ``torchrun --nproc_per_node N`` both loops train with DistributedDataParallel
(see `distributed`): `batch` is then the global batch, split over the processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError

LITE_MODELS = ("samusa-lite", "litemedsam")


def read_config(path: str | Path, overrides: list[str] = ()) -> dict:
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise InputError(f"training config {path} does not exist (examples: configs/samusa_lite.yaml, configs/sam2_finetune.yaml)")
    try:
        config = OmegaConf.load(path)
        if overrides:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
        values = OmegaConf.to_container(config, resolve=True)
    except Exception as exc:  # omegaconf/yaml errors name the line
        raise InputError(f"{path} is not a valid training config: {exc}") from None
    if not isinstance(values, dict):
        raise InputError(f"{path} must hold a mapping of options (model:, train:, ...)")
    base = path.resolve().parent

    def beside_config(value, from_here: bool = False) -> str:
        """Relative to the config file, as the shipped configs' comments say. Data folders
        (`from_here`) are also looked up from the working directory, where nothing of
        that name is beside the config: configs written with paths from where training
        is started. Looked up from there first, a file that happened to exist from the
        working directory shadowed the one the config names."""
        if Path(value).is_absolute():
            return value
        beside = (base / value).resolve()
        return value if from_here and not beside.exists() and Path(value).exists() else str(beside)

    for key in ("train", "validate"):  # data paths
        if isinstance(values.get(key), list):
            values[key] = [v if str(v).startswith("phantom") else beside_config(v, from_here=True) for v in values[key]]
    if isinstance(values.get("init"), str) and values["init"].endswith(".pt"):  # a weights file, not a model id
        values["init"] = beside_config(values["init"])
    for key in ("out", "cache"):  # so are the output and cache folders
        if isinstance(values.get(key), str) and not Path(values[key]).is_absolute():
            values[key] = str((base / values[key]).resolve())
    return values


def _say(message: str) -> None:
    print(message, flush=True)  # flushed: training logs are often redirected to a file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config (configs/samusa_lite.yaml, configs/sam2_finetune.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=20 out=runs/try")


def cmd_train(args: argparse.Namespace) -> int:
    values = read_config(args.config, args.overrides)
    model = str(values.pop("model", "samusa-lite"))
    if model in LITE_MODELS:
        from .lite import LiteTrainConfig, train_lite

        values.setdefault("config_file", str(args.config))  # the saved weights say how they were made
        result = train_lite(LiteTrainConfig.from_dict(values), progress=_say)
        if _main_process():
            print(f"SAMUSA-Lite weights: {result['weights']}  (use: samusa segment --model {result['weights']} ...)")
        return 0
    from .sam2 import Sam2TrainConfig, train_sam2

    result = train_sam2(Sam2TrainConfig.from_dict({"model": model, **values}), progress=_say)
    if _main_process():
        print(f"SAM2 checkpoint: {result['checkpoint']}  (use: samusa segment --model {result['checkpoint']} ...)")
    return 0


def _main_process() -> bool:
    """Rank 0 under torchrun (``torchrun --nproc_per_node N -m SAMUSALib.cli train ...``), or the only process."""
    import os

    return os.environ.get("RANK", "0") == "0"
