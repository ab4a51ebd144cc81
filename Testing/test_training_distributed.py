"""`samusa train` under torchrun with DistributedDataParallel (gloo on the CPU), issue 22.

Each trainer runs for real under ``python -m torch.distributed.run --standalone`` with 2
processes, against the same `samusa train` run in this process, not distributed, at the
same global batch (4 images: 4 in one process, 2 + 2 on two). (A 1-process torchrun
launch was the reference before; it decodes as the plain run does and cost a launch
per test.) Stated tolerance, after k = 2 steps:
- every logged loss term equal within rtol 1e-4 (they agree to all 5 logged decimals);
- weights: the difference between the two runs is at most 1% of how far the 1-process
  run moved them (norm over all trained tensors) and at most 5e-5 per element. (Adam
  turns float noise into steps where a gradient is zero in exact arithmetic, such as
  attention key biases, so per element the runs may differ by a fraction of one step.)
Only rank 0 writes (one log, one checkpoint), and a 2-process run resumed from its
state.pt continues as the uninterrupted 1-process run does.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from conftest import write_png_dataset

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds per torchrun launch: a hung process group fails the test


def torchrun(config: Path, processes: int, *overrides: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "SAMUSALib.cli", "train", str(config), *overrides]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=config.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def train_here(config: Path, *overrides: str) -> None:
    """`samusa train` in this process, single-threaded as each torchrun worker is."""
    from SAMUSALib.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(config), *overrides]) == 0
    finally:
        torch.set_num_threads(threads)


def log_rows(run: Path) -> list[dict]:
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def assert_same_losses(rows_a: list[dict], rows_b: list[dict]) -> None:
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        for key in a:
            if key in ("seconds", "kind"):
                continue
            # atol: one unit of the log's last decimal (losses are logged to 5 decimals, so
            # two runs a rounding apart can differ by 1e-5: 0.05662 against 0.05663)
            np.testing.assert_allclose(float(b[key]), float(a[key]), rtol=1e-4, atol=1e-5, err_msg=f"step {a['step']} {key}")


def assert_same_weights(one: dict, two: dict, start: dict) -> None:
    moved = differ = 0.0
    for name, value in one.items():
        if name not in start or not value.is_floating_point():
            continue
        moved += float(((value.float() - start[name].float()) ** 2).sum())
        gap = (two[name].float() - value.float()).abs()
        differ += float((gap ** 2).sum())
        assert float(gap.max()) <= 5e-5, name
    assert moved > 0, "training did not change the weights"
    assert differ ** 0.5 <= 0.01 * moved ** 0.5, (differ ** 0.5, moved ** 0.5)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sam2_two_processes_match_one_and_resume(tmp_path):
    from SAMUSALib.models import load_model

    config = write_config(tmp_path / "sam2.yaml", """
model: test-tiny
train: ["phantom:4"]
batch: 4
lr: 1.0e-4
warmup: 10   # longer than the run: the learning rate does not depend on `steps`
augment: light
device: cpu
tensorboard: false
progress_bar: false
validate_every: 100
log_every: 1
""")
    train_here(config, "steps=2", "out=one")
    stdout = torchrun(config, 2, "steps=1", "out=two")
    assert stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    assert_same_losses(log_rows(tmp_path / "one")[:1], log_rows(tmp_path / "two"))
    stdout = torchrun(config, 2, "steps=2", "out=two")  # resumes from two/state.pt
    assert "resumed at step 1" in stdout
    assert_same_losses(log_rows(tmp_path / "one"), log_rows(tmp_path / "two"))
    one = torch.load(tmp_path / "one" / "state.pt", weights_only=False)
    two = torch.load(tmp_path / "two" / "state.pt", weights_only=False)
    assert one["step"] == two["step"] == 2
    start = load_model("test-tiny", device="cpu", seed=0).sam.state_dict()
    assert_same_weights(one["model"], two["model"], start)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.pt", "log.csv", "state.pt", "validation.json"]


def test_samusa_lite_two_processes_match_one(tmp_path, carotid_sample):
    from SAMUSALib.backends.litemedsam.lite import from_litemedsam
    from SAMUSALib.backends.litemedsam.network import build_litemedsam

    write_png_dataset(tmp_path / "carotid", *carotid_sample, (0, 4, 9, 14))
    config = write_config(tmp_path / "lite.yaml", """
model: samusa-lite
train: [carotid]
cache: embeddings
holdout: 0.0
steps: 2
batch: 4
lr: 3.0e-4
warmup: 10
validate_images: 0
log_every: 1
""")
    train_here(config, "out=one")
    torchrun(config, 2, "out=two")
    assert_same_losses(log_rows(tmp_path / "one"), log_rows(tmp_path / "two"))
    one = torch.load(tmp_path / "one" / "state.pt", weights_only=False)["net"]
    two = torch.load(tmp_path / "two" / "state.pt", weights_only=False)["net"]
    base, _ = build_litemedsam()
    start = {k: v for k, v in from_litemedsam(base).state_dict().items() if k != "boundary_embed.weight"}
    assert_same_weights(one, two, start)
