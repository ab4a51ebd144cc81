"""Issue 18: each CPU option for LiteMedSAM's image encoder, against PyTorch eager float32
and a matmul of the encoder's FLOPs, interleaved in one process (minima of REPS repeats).

    PYTHONPATH=. python scripts/bench_lite_options.py [ov] [compile]    # REPS=4 by default

Prints max |embedding - eager| per option and encoder time / matmul floor. `ov` adds
OpenVINO float32 and bfloat16 (converts the encoder, not cached here); `compile` adds
torch.compile (its first call is timed too).
"""

import copy
import os
import statistics
import sys
import time
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

from SAMUSALib.backends.litemedsam.network import build_litemedsam
from SAMUSALib.backends.litemedsam.runtime import fold_batch_norms

warnings.simplefilter("ignore")
torch.set_grad_enabled(False)
net, _ = build_litemedsam()
enc = net.image_encoder.eval()
x = torch.rand(1, 3, 256, 256)
ref = enc(x)
folded = copy.deepcopy(enc)
fold_batch_norms(folded)
last = copy.deepcopy(folded).to(memory_format=torch.channels_last)
x_last = x.contiguous(memory_format=torch.channels_last)


def bf16():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return folded(x)


variants = {"eager": lambda: enc(x), "fold": lambda: folded(x), "fold+channels-last": lambda: last(x_last), "fold+bf16": bf16}
if "ov" in sys.argv[1:]:
    import openvino as ov

    graph = ov.convert_model(folded, example_input=x, input=[(1, 3, 256, 256)])
    for precision in ("f32", "bf16"):
        compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})
        variants[f"openvino-{precision}"] = lambda c=compiled: torch.from_numpy(c(x.numpy())[0].copy())
if "compile" in sys.argv[1:]:
    compiled_module = torch.compile(folded)
    start = time.perf_counter()
    compiled_module(x)
    print(f"torch.compile first call {time.perf_counter() - start:.1f} s")
    variants["torch.compile"] = lambda: compiled_module(x)
for name, run in variants.items():
    print(f"{name:20s} max |diff| {(run().float() - ref).abs().max().item():.2e}")
with FlopCounterMode(display=False) as counter:
    enc(x)
gflop = counter.get_total_flops() / 1e9
n = 2048
a, b = torch.randn(n, n), torch.randn(n, n)
reps = max(1, round(gflop * 1e9 / (2 * n**3)))
variants["matmul floor"] = lambda: [a @ b for _ in range(reps)]
times = {name: [] for name in variants}
for _ in range(int(os.environ.get("REPS", 4))):
    for name, run in variants.items():
        start = time.perf_counter()
        run()
        times[name].append(time.perf_counter() - start)
floor = min(times["matmul floor"]) * gflop * 1e9 / (reps * 2 * n**3)
print(f"encoder {gflop:.1f} GFLOP; floor {floor:.3f} s")
for name, values in times.items():
    print(f"{name:20s} min {min(values):.3f} s  median {statistics.median(values):.3f} s  min / floor {min(values) / floor:.2f}  "
          f"vs eager {min(values) / min(times['eager']):.2f}")
