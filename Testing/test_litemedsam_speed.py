"""LiteMedSAM at CPU speed (issue 18; SAMUSALib/backends/litemedsam/runtime.py): every
speed-up must leave the results as they were.

- batch norms folded into the convolutions, attention's projection split, the
  full-resolution stage in row strips, and channels-last: the same encoder output;
- the OpenVINO encoder: the same embedding, exported once into the model cache and read
  back from it; a failing export warns and falls back to PyTorch, never stops;
- OpenVINO's arithmetic: float32 unless bfloat16 is asked for (`SAMUSA_LITE_PRECISION`);
- the default model as loaded (all of the above) against today's float32 eager network
  on real validation frames (../shared/data), with a box, boundary points and region
  clicks: masks within Dice 0.995.

Timings are not tested here: `samusa bench --litemedsam` reports them.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from SAMUSALib.backends.litemedsam import runtime
from SAMUSALib.errors import InputError
from SAMUSALib.backends.litemedsam.encoder import ConvBN, TinyViTEncoder

from conftest import centroid_points, require_shared_data


@pytest.fixture(scope="module")
def small_encoder():
    """A 64 px TinyViT encoder with random weights and non-trivial batch-norm statistics
    (a freshly built one has mean 0, variance 1: folding it would prove nothing)."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # its layers' random weights too: not whatever ran before in this worker
        torch.manual_seed(0)
        encoder = TinyViTEncoder(img_size=64).eval()
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for tensor, low, high in ((module.weight, 0.5, 1.5), (module.bias, -0.2, 0.2),
                                          (module.running_mean, -0.3, 0.3), (module.running_var, 0.2, 2.0)):
                    tensor.copy_(torch.empty(tensor.shape).uniform_(low, high, generator=generator))
    image = torch.rand(1, 3, 64, 64, generator=generator)
    with torch.no_grad():
        reference = encoder(image)
    return encoder, image, reference


def test_folded_batch_norms_and_channels_last_give_the_unfolded_output(small_encoder):
    encoder, image, reference = small_encoder
    folded = copy.deepcopy(encoder)
    count = runtime.fold_batch_norms(folded)
    convbns = [m for m in folded.modules() if isinstance(m, ConvBN)]
    assert count == len(convbns) > 20
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert runtime.fold_batch_norms(folded) == 0  # idempotent
    with torch.no_grad():
        out = folded(image)
        last = folded.to(memory_format=torch.channels_last)(image.contiguous(memory_format=torch.channels_last))
    scale = reference.abs().max().item()
    assert torch.allclose(out, reference, atol=1e-4 * scale, rtol=1e-4)
    assert torch.allclose(last, reference, atol=1e-4 * scale, rtol=1e-4)
    # the folding is not vacuous: dropping the batch norms instead changes the output
    dropped = copy.deepcopy(encoder)
    for module in dropped.modules():
        if isinstance(module, ConvBN):
            module.bn = torch.nn.Identity()
    with torch.no_grad():
        assert not torch.allclose(dropped(image), reference, atol=1e-2 * scale)


def test_split_attention_gives_the_fused_projection_s_output(small_encoder):
    """Attention's per-head fused qkv projection as three linear layers (the graph
    OpenVINO runs without a split): the same encoder output, and the split is not vacuous
    (a wrong regrouping of the rows changes it)."""
    from SAMUSALib.backends.litemedsam.encoder import WindowAttention

    encoder, image, reference = small_encoder
    split = copy.deepcopy(encoder)
    count = runtime.split_attention(split)
    assert count == sum(isinstance(m, WindowAttention) for m in encoder.modules()) == 10
    assert not any(isinstance(m, WindowAttention) for m in split.modules())
    with torch.no_grad():
        out = split(image)
    scale = reference.abs().max().item()
    assert torch.allclose(out, reference, atol=1e-5 * scale, rtol=1e-5)
    wrong = copy.deepcopy(split)
    for module in wrong.modules():
        if isinstance(module, runtime.SplitWindowAttention):
            module.q, module.k = module.k, module.q
    with torch.no_grad():  # the fixture's encoder: off by 1.15 % of the scale, the split by 0
        assert not torch.allclose(wrong(image), reference, atol=1e-3 * scale)


@pytest.mark.parametrize("rows", [2, 6, 16, 64])
def test_row_strips_give_the_whole_map_s_output(small_encoder, rows):
    """Stem and stage 0 strip by strip (each strip reading its neighbours' halo rows):
    the encoder's output, whether the strips divide the height (2, 16), leave a shorter
    last strip (6) or are one strip (64); folded and channels-last as the loader runs it."""
    from SAMUSALib.backends.litemedsam.row_strips import StripedEncoder

    encoder, image, reference = small_encoder
    striped = StripedEncoder(copy.deepcopy(encoder), rows)
    prepared = copy.deepcopy(encoder)
    runtime.fold_batch_norms(prepared)
    prepared = StripedEncoder(prepared.to(memory_format=torch.channels_last), rows)
    with torch.no_grad():
        out = striped(image)
        fast = prepared(image.contiguous(memory_format=torch.channels_last))
    scale = reference.abs().max().item()
    assert torch.allclose(out, reference, atol=1e-5 * scale, rtol=1e-5)
    assert torch.allclose(fast, reference, atol=1e-4 * scale, rtol=1e-4)
    with torch.no_grad():  # the first stage alone (what the strips replace) equals the plain one
        plain = encoder.layers[0](encoder.patch_embed(image))
        assert torch.allclose(striped.first_stage(image), plain, atol=1e-5 * plain.abs().max().item(), rtol=1e-5)
    with pytest.raises(ValueError, match="even number of rows"):
        StripedEncoder(encoder, 5)


@pytest.mark.parametrize("multimask", [False, True])
def test_the_decoder_graph_computes_sam2_s_mask_decoder(multimask):
    """`decoder_graph.ExportDecoder`, what OpenVINO runs: the same logits and IoU as SAM2's
    `MaskDecoder` for a batch of prompts with mask prompts, and for a batch without any
    (one shared no-mask vector: the image-side projections of the first layer computed
    once), in both output modes. Random weights: nothing here depends on training."""
    from SAMUSALib.backends.litemedsam.decoder_graph import ExportDecoder, shared_dense
    from SAMUSALib.backends.litemedsam.network import LiteMedSAM

    torch.manual_seed(0)
    net = LiteMedSAM().eval()
    pe, decoder = net.prompt_encoder, net.mask_decoder
    image_pe = runtime.dense_pe(pe)
    embedding = torch.randn(1, 256, 64, 64)
    boxes = torch.tensor([[40.0, 50.0, 150.0, 170.0], [10.0, 20.0, 90.0, 60.0], [100.0, 100.0, 250.0, 200.0]])
    with torch.no_grad():
        for masks in (None, torch.randn(3, 1, 256, 256)):
            sparse, dense = pe(points=None, boxes=boxes, masks=masks)
            want = decoder(image_embeddings=embedding, image_pe=image_pe, sparse_prompt_embeddings=sparse,
                           dense_prompt_embeddings=dense, multimask_output=multimask, repeat_image=True)[:2]
            vector = shared_dense(dense)
            assert (vector is not None) == (masks is None)  # only a no-mask batch shares its dense prompt
            graph = ExportDecoder(decoder, multimask, image_pe).eval()
            got = graph(embedding, sparse, dense.contiguous() if vector is None else vector)
            assert got[0].shape == want[0].shape == (3, 3 if multimask else 1, 256, 256)
            for a, b in zip(got, want):
                assert torch.allclose(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


def test_openvino_encoder_gives_the_same_embedding_exported_once(monkeypatch):
    """LiteMedSAM's own encoder (the export the default model uses, so the suite pays for
    one conversion only) against its unfolded PyTorch self."""
    pytest.importorskip("openvino")
    from SAMUSALib.backends.litemedsam.network import build_litemedsam

    net, _ = build_litemedsam()
    encoder = net.image_encoder
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = encoder(image)
    prepared, done = runtime.prepare_encoder(encoder, torch.device("cpu"))  # as the loader prepares it
    assert done["split_attention"] == 10 and done["folded_batch_norms"] > 20 and done["row_strips"] == 32
    # as a fresh process: a graph compiled earlier in this worker may have been exported to
    # another test's cache folder, and the file is looked for in this one
    monkeypatch.setattr(runtime, "_compiled", {})
    fast = runtime.OpenVINOEncoder(prepared)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = fast(image)
    assert out is not None and fast.failed is None
    assert out.shape == reference.shape == (1, 256, 64, 64)
    assert torch.allclose(out, reference, atol=1e-4 * reference.abs().max().item(), rtol=1e-4)
    exported = runtime.export_folder() / fast.key / "encoder.xml"
    assert exported.is_file() and exported.with_suffix(".bin").is_file()
    # another process (no compiled copy in memory) reads the cached file, exports nothing
    monkeypatch.setattr(runtime, "_compiled", {})
    monkeypatch.setattr(runtime, "export_module", lambda *a, **k: pytest.fail("exported again despite the cache"))
    again = runtime.OpenVINOEncoder(prepared)
    assert torch.equal(again(image), out)
    # what it does not run (a batch of two, another size, bfloat16) is left to PyTorch
    assert again(image.expand(2, -1, -1, -1)) is None and again(torch.rand(1, 3, 128, 128)) is None
    assert again(image.bfloat16()) is None


def test_a_failing_export_falls_back_to_pytorch_with_a_warning(small_encoder, monkeypatch):
    pytest.importorskip("openvino")
    from SAMUSALib.backends.litemedsam.network import LiteMedSAM

    encoder, image, reference = small_encoder
    net = LiteMedSAM.__new__(LiteMedSAM)
    torch.nn.Module.__init__(net)
    net.image_encoder = copy.deepcopy(encoder)
    monkeypatch.setattr(runtime, "_compiled", {})

    def broken(*args, **kwargs):
        raise RuntimeError("conversion failed on purpose")

    monkeypatch.setattr(runtime, "export_module", broken)
    monkeypatch.setattr(runtime, "weights_key", lambda module: "f" * 64)  # a key nothing was exported under
    before = {k: v.clone() for k, v in net.state_dict().items()}
    done = runtime.speed_up(net, torch.device("cpu"), "openvino")
    assert done["runtime"] == "openvino" and done["folded_batch_norms"] > 20
    after = net.state_dict()  # the network's own weights stay the checkpoint's (folding works on a copy)
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    with torch.inference_mode():
        with pytest.warns(RuntimeWarning, match="conversion failed on purpose"):
            first = net.embed(image)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # warned once, not on every frame
            second = net.embed(image)
    scale = reference.abs().max().item()
    assert "conversion failed" in net.encoder_runtime.failed
    assert torch.allclose(first, reference, atol=1e-4 * scale, rtol=1e-4) and torch.equal(first, second)


def test_eager_runtime_and_a_missing_openvino_keep_pytorch(small_encoder, monkeypatch):
    from SAMUSALib.backends.litemedsam.network import LiteMedSAM

    encoder, _, _ = small_encoder
    net = LiteMedSAM.__new__(LiteMedSAM)
    torch.nn.Module.__init__(net)
    net.image_encoder = copy.deepcopy(encoder)
    assert runtime.speed_up(net, torch.device("cpu"), "eager")["runtime"] == "eager" and net.encoder_runtime is None

    def missing(name="openvino"):
        raise ImportError("No module named 'openvino'")

    monkeypatch.setattr(runtime, "_openvino", missing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert runtime.speed_up(net, torch.device("cpu"), "auto")["runtime"] == "eager"
    with pytest.warns(RuntimeWarning, match="cannot be imported"):
        assert runtime.speed_up(net, torch.device("cpu"), "openvino")["runtime"] == "eager"
    with pytest.raises(ValueError, match="SAMUSA_LITE_RUNTIME"):
        runtime.runtime_choice("onnx")


def test_openvino_arithmetic_is_float32_unless_bf16_is_asked_for(monkeypatch):
    """bfloat16 moved the default model's masks beyond Dice 0.995 even on CPUs with AMX
    (runtime.BF16_STAGES), so ``auto`` keeps every stage in float32 there too; the
    variable opts in, and a bad value is named in the error."""
    from SAMUSALib.models import device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)
    assert runtime.stage_precision("encoder") == runtime.stage_precision("decoder") == "f32"
    monkeypatch.setattr(runtime, "BF16_STAGES", frozenset({"encoder"}))  # how a stage would opt in
    assert (runtime.stage_precision("encoder"), runtime.stage_precision("decoder")) == ("bf16", "f32")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert runtime.stage_precision("encoder") == "f32"
    monkeypatch.setenv(runtime.PRECISION_ENV, "bf16")
    assert runtime.stage_precision("decoder") == "bf16"
    monkeypatch.setenv(runtime.PRECISION_ENV, "fp32")
    assert runtime.stage_precision("encoder") == "f32"
    monkeypatch.setenv(runtime.PRECISION_ENV, "half")
    with pytest.raises(InputError, match="SAMUSA_LITE_PRECISION.*auto, fp32, bf16"):
        runtime.stage_precision("encoder")
    with pytest.raises(InputError, match="SAMUSA_LITE_PRECISION"):  # checked whatever the runtime
        runtime.speed_up(torch.nn.Module(), torch.device("cpu"), "eager")
    with pytest.raises(ValueError, match="f32 or bf16"):
        runtime.OpenVINOModule(torch.nn.Identity(), "x", [(1,)], [torch.zeros(1)], "fp16")


def test_a_bf16_encoder_is_compiled_beside_the_float32_one():
    """Opting in compiles the same cached export a second time at bfloat16: the float32
    graph stays as it was, and the bfloat16 embedding is near it (equal where OpenVINO
    has no bfloat16 on the CPU)."""
    pytest.importorskip("openvino")
    from SAMUSALib.backends.litemedsam.network import build_litemedsam

    net, _ = build_litemedsam()
    prepared, _ = runtime.prepare_encoder(net.image_encoder, torch.device("cpu"))
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    full, half = runtime.OpenVINOEncoder(prepared), runtime.OpenVINOEncoder(prepared, "bf16")
    a = full(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        b = half(image)
    if b is None:  # an OpenVINO that refuses bfloat16 on this CPU: it says so, PyTorch runs
        assert half.failed and torch.equal(full(image), a)
        return
    assert full.key == half.key and full.compiled is not half.compiled
    assert (full.key, "f32") in runtime._compiled and (full.key, "bf16") in runtime._compiled
    scale = a.abs().max().item()
    assert b.dtype == torch.float32 and (a - b).abs().max().item() < 0.2 * scale
    assert torch.equal(runtime.OpenVINOEncoder(prepared)(image), a)  # float32 unchanged
    from SAMUSALib.models.device import cpu_flags

    if "amx_bf16" in cpu_flags():  # bfloat16 arithmetic really ran (2026-12-04: up to 0.036)
        assert not torch.equal(a, b)


VALIDATION = (("busbra", "bus_0031-s.png"), ("carotid", "000.png"))


def test_the_fast_default_model_gives_float32_eager_masks_on_real_frames(monkeypatch):
    """samusa-lite as loaded (OpenVINO encoder, folded, channels-last, embeddings kept in
    float16) against the same network without any of it (float32 eager, embeddings kept
    in float32), on validation frames; one object per prompt type."""
    import torch as _torch

    from SAMUSALib.engine import Session
    from SAMUSALib.evaluation.metrics import dice
    from SAMUSALib.frames import FrameSource
    from SAMUSALib.io import read_image
    from SAMUSALib.models import load_model

    frames = []
    for dataset, name in VALIDATION:
        folder = require_shared_data(dataset)
        image, _ = read_image(folder / "images" / name)
        mask, _ = read_image(folder / "masks" / name)
        frames.append((np.asarray(image)[0], np.asarray(mask)[0] > 0))
    monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)  # float32 arithmetic, as shipped
    fast = load_model("samusa-lite", device="cpu")
    assert fast.metadata["runtime_precision"] in (None, {"encoder": "f32", "decoder": "f32"})
    with monkeypatch.context() as patch:
        patch.setattr(runtime, "speed_up", lambda net, device, choice=None: {"runtime": "eager"})
        reference = load_model("samusa-lite", device="cpu")
    assert not hasattr(reference.sam, "encoder_runtime")
    expected_runtime = "openvino" if _has_openvino() else "eager"
    assert fast.metadata["encoder_runtime"] == expected_runtime
    for image, truth in frames:
        ys, xs = np.nonzero(truth)
        prompts = {
            1: {"box": [xs.min(), ys.min(), xs.max(), ys.max()]},
            2: {"boundary": centroid_points(truth)},
            3: {"positive": [[xs.mean(), ys.mean()]]},
        }
        masks = {}
        for label, model in (("fast", fast), ("reference", reference)):
            with monkeypatch.context() as env:
                if label == "reference":  # float32 eager, the embedding kept as computed
                    env.setenv("SAMUSA_EMBEDDING_DTYPE", "float32")
                session = Session(FrameSource(image[None]), model)
            masks[label] = {obj: session.add_prompt(obj, 0, **prompt) for obj, prompt in prompts.items()}
            assert session.features.stats.calls == 1
            kept = session.features.lookup(0).dtype
            assert kept == (_torch.float16 if label == "fast" else _torch.float32)
        if expected_runtime == "openvino":  # the OpenVINO encoder and both decoders ran, none failed
            assert fast.sam.encoder_runtime.failed is None and fast.sam.encoder_runtime.compiled is not None
            for decoder in (fast.sam.mask_decoder, fast.sam.pretrained_heads["mask_decoder"]):
                assert decoder.samusa_runtime.graphs and decoder.samusa_runtime.failed is None
            # boundary points fit LiteMedSAM's candidate boxes: one batch sharing the image side
            assert (False, True) in fast.sam.pretrained_heads["mask_decoder"].samusa_runtime.graphs
        for obj in prompts:
            assert masks["reference"][obj].sum() > 500  # a real mask, not two empty ones agreeing
            assert dice(masks["fast"][obj], masks["reference"][obj]) >= 0.995, (obj, prompts[obj])
    # the decoder for a batch of prompts of several lengths (padded tokens, mask prompts)
    embedding = _torch.randn(1, 256, 64, 64, generator=_torch.Generator().manual_seed(2))
    coords = _torch.tensor([[[60.0, 80.0], [120.0, 90.0], [0.0, 0.0]], [[30.0, 30.0], [200.0, 210.0], [100.0, 100.0]]])
    labels = _torch.tensor([[4, 1, -1], [2, 3, 4]])
    masks = _torch.randn(2, 1, 256, 256, generator=_torch.Generator().manual_seed(3))
    with _torch.inference_mode():
        got = fast.sam.decode_tokens(embedding, coords, labels, masks)
        want = reference.sam.decode_tokens(embedding, coords, labels, masks)
    for a, b in zip(got, want):
        assert a.shape == b.shape and _torch.allclose(a, b, atol=1e-3 * b.abs().max().item(), rtol=1e-3)
    # LiteMedSAM's own heads with its three masks per box (the multimask graph)
    boxes = _torch.tensor([[40.0, 50.0, 150.0, 170.0], [10.0, 20.0, 90.0, 60.0]])
    with _torch.inference_mode():
        got = fast.sam.decode(embedding, boxes=boxes, multimask=True)
        want = reference.sam.decode(embedding, boxes=boxes, multimask=True)
    assert got[0].shape == (2, 3, 256, 256) and got[1].shape == (2, 3)
    for a, b in zip(got, want):
        assert a.shape == b.shape and _torch.allclose(a, b, atol=1e-3 * b.abs().max().item(), rtol=1e-3)
    if expected_runtime == "openvino":
        assert (True, True) in fast.sam.pretrained_heads["mask_decoder"].samusa_runtime.graphs


def _has_openvino() -> bool:
    try:
        runtime._openvino()
    except Exception:
        return False
    return True


def test_lite_bench_worker_reports_encoder_floor_propagation_click_and_memory():
    """`samusa bench --lite`'s worker, in process, on a 3-frame loop (figures, not timings)."""
    from SAMUSALib.bench_lite import TARGETS, lite_markdown, worker_lite

    run = worker_lite({"model": "litemedsam", "engine": "fast", "frames": 3, "height": 128, "width": 160, "repeats": 1})
    assert run["encoder_gflop"] > 50  # LiteMedSAM's encoder: 75 GFLOP per 256 x 256 frame
    assert run["runtime"] == ("openvino" if _has_openvino() else "eager")
    assert len(run["encoder_s"]) == len(run["floor_s"]) == 1 and run["floor_min_s"] > 0
    assert run["propagation_s_per_frame"] > 0 and run["session_encoder_s_per_frame"] > 0
    assert len(run["click_all_s"]) == 5 and run["peak_rss_mb"] >= run["base_rss_mb"] > 0
    # a click decodes at least once, and one mask-decoder pass is 3.6 GFLOP at 64 x 64 tokens
    assert run["click_passes"] >= 1 and run["click_gflop"] > 3.5 and run["click_floor_s"] > 0
    run["ratios"] = {"encoder_vs_floor": 2.0, "encoder_vs_floor_median": 2.1, "frame_vs_encoder": 1.1, "click_s": 0.02}
    text = lite_markdown({"machine": {"cpu": "x", "cores": 2, "torch": "t"}, "frames": 3, "frame_size": [128, 160], "runs": [run]})
    assert "| litemedsam | fast: " in text and "2.00, 2.10" in text and "decoder calls) |" in text and set(TARGETS) == {"encoder_vs_floor", "frame_vs_encoder", "click_s"}
