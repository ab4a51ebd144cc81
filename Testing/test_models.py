"""Tests for SAMUSALib.models: registry, seeded test model, checkpoints, downloads, devices."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
import torch

from SAMUSALib import models
from SAMUSALib.errors import DeviceError, ModelError

OFFICIAL = ["sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus", "sam2.1-large"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache; never route 127.0.0.1 through a proxy."""
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SAMUSA_ALLOW_UNVERIFIED", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def tiny() -> models.LoadedModel:
    return models.load_model("test-tiny", device="cpu", seed=0)


@pytest.fixture(scope="module")
def tiny_ckpt(tiny, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return models.save_checkpoint(path, tiny, {"note": "round trip", "boundary_label": 3})


def _image_features(loaded: models.LoadedModel) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    img = torch.randn(1, 3, loaded.image_size, loaded.image_size, generator=g)
    with torch.inference_mode():
        return loaded.sam.forward_image(img)["vision_features"]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- registry


def test_registry_has_official_models_with_https_urls():
    for mid in OFFICIAL:
        spec = models.REGISTRY[mid]
        assert spec.url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/092824/")
        assert spec.url.endswith(spec.filename)
        assert spec.image_size == 1024 and spec.trained and not spec.boundary_native
        assert spec.prompt_types == {"region", "box", "mask"}
        assert spec.licence == "Apache-2.0"
        assert spec.sha256 is None or len(spec.sha256) == 64
    test = models.REGISTRY["test-tiny"]
    assert not test.trained and test.url is None and "UNTRAINED" in test.description


def test_unknown_model_id_lists_choices():
    with pytest.raises(ModelError, match="sam2.1-tiny"):
        models.load_model("sam2.1-huge", device="cpu")


def test_list_models_rows():
    rows = {r["id"]: r for r in models.list_models()}
    assert set(OFFICIAL) <= set(rows) and "test-tiny" in rows
    assert rows["sam2.1-tiny"]["cached"] is None and rows["sam2.1-tiny"]["size_bytes"] > 0
    assert rows["test-tiny"]["trained"] is False


# --------------------------------------------------------------------------- test model


def test_test_tiny_builds_video_predictor(tiny):
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    assert isinstance(tiny.sam, SAM2VideoPredictor)
    assert not tiny.sam.training
    assert tiny.image_size == 256 == tiny.sam.image_size
    assert tiny.device == torch.device("cpu")
    assert tiny.metadata["trained"] is False
    rope = tiny.sam.memory_attention.layers[0].self_attn
    assert rope.freqs_cis.shape[0] == 16 * 16  # feat_sizes override reached the yaml path
    assert _image_features(tiny).shape[-2:] == (16, 16)
    with tiny.autocast():  # bf16 on CPUs with native bf16, else float32
        pass


def test_test_tiny_is_deterministic_by_seed(tiny):
    rng_before = torch.get_rng_state()
    again = models.load_model("test-tiny", device="cpu", seed=0)
    assert torch.equal(rng_before, torch.get_rng_state())  # caller's RNG left alone
    assert _same_weights(tiny.sam, again.sam)
    other = models.load_model("test-tiny", device="cpu", seed=1)
    assert not _same_weights(tiny.sam, other.sam)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tiny, tiny_ckpt):
    loaded = models.load_model(tiny_ckpt, device="cpu")
    assert _same_weights(tiny.sam, loaded.sam)
    assert torch.equal(_image_features(tiny), _image_features(loaded))
    assert loaded.image_size == 256
    assert loaded.spec.trained is False  # untrained stays marked untrained
    assert loaded.spec.boundary_label == 3
    assert loaded.metadata["note"] == "round trip"
    assert loaded.metadata["source"] == "file"
    assert loaded.metadata["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"
    # a str path works as well
    assert models.load_model(str(tiny_ckpt), device="cpu").image_size == 256


def test_checkpoint_without_metadata_is_inferred_as_tiny(tiny, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"model": tiny.sam.state_dict()}, path)
    loaded = models.load_model(path, device="cpu")
    assert loaded.spec.config == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert loaded.image_size == 1024
    assert loaded.metadata["base_model"] == "sam2.1-tiny"
    assert loaded.metadata["inferred"] is True
    assert _same_weights(tiny.sam, loaded.sam)


def test_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelError, match="not found") as err:
        models.load_model(missing, device="cpu")
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("kind", ["random", "truncated", "text"])
def test_corrupt_checkpoint(tiny_ckpt, tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "truncated":
        path.write_bytes(tiny_ckpt.read_bytes()[:100_000])
    else:
        path.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(ModelError, match="not a valid checkpoint") as err:
        models.load_model(path, device="cpu")
    assert str(path) in str(err.value)
    assert "Traceback" not in str(err.value)


def test_checkpoint_with_wrong_keys(tiny, tmp_path):
    state = dict(tiny.sam.state_dict())
    state.pop("no_mem_embed")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.pt"
    torch.save({"model": state, "samusa": {"config": "configs/sam2.1/sam2.1_hiera_t.yaml", "image_size": 256}}, path)
    with pytest.raises(ModelError, match="missing key") as err:
        models.load_model(path, device="cpu")
    assert "no_mem_embed" in str(err.value) and "extra.weight" in str(err.value)


def test_checkpoint_with_wrong_size_config(tiny, tmp_path):
    path = tmp_path / "mislabelled.pt"
    torch.save({"model": tiny.sam.state_dict(),
                "samusa": {"config": "configs/sam2.1/sam2.1_hiera_s.yaml", "image_size": 256}}, path)
    with pytest.raises(ModelError, match="do not match"):
        models.load_model(path, device="cpu")


def test_a_saved_checkpoint_is_readable_by_others_as_a_new_file_would_be(tiny, tmp_path):
    """Written through mkstemp, a fine-tuned checkpoint was 0600: on a shared cluster nobody
    else could load it. It now gets what the umask gives a new file."""
    import os

    old = os.umask(0o022)
    try:
        path = models.save_checkpoint(tmp_path / "shared.pt", tiny, {"note": "x"})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_checkpoint_rejects_unloadable_metadata(tiny, tmp_path):
    with pytest.raises(ModelError, match="metadata"):
        models.save_checkpoint(tmp_path / "x.pt", tiny, {"bad": object()})
    assert not list(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------- downloads


class _Server:
    """A local HTTP server in a thread that counts the requests it answers."""

    def __init__(self, root: Path):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(root), **k)

            def do_GET(self):
                outer.requests += 1
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    payload = b"fake checkpoint bytes " * 50_000  # ~1 MB, more than one read chunk
    (root / "weights.pt").write_bytes(payload)
    srv = _Server(root)
    srv.payload = payload
    yield srv
    srv.close()


def _spec(server, sha256):
    return dataclasses.replace(
        models.REGISTRY["sam2.1-tiny"], id="local-test", url=server.url("weights.pt"),
        sha256=sha256, filename="weights.pt", size_bytes=None,
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_success_then_cached(server):
    spec = _spec(server, hashlib.sha256(server.payload).hexdigest())
    seen = []
    path = models.download_checkpoint(spec, progress=lambda d, t: seen.append((d, t)))
    assert path == models.cache_dir() / "weights.pt"
    assert path.read_bytes() == server.payload
    assert models.sha256_of(path) == spec.sha256
    assert seen[-1] == (len(server.payload), len(server.payload))
    assert server.requests == 1
    assert models.cached_path(spec) == path
    assert models.download_checkpoint(spec) == path
    assert server.requests == 1  # second call: no network
    assert not [n for n in _leftovers(path.parent) if n.endswith(".part")]


def test_download_wrong_hash_leaves_nothing(server):
    spec = _spec(server, "0" * 64)
    with pytest.raises(ModelError) as err:
        models.download_checkpoint(spec)
    msg = str(err.value)
    assert "0" * 64 in msg and hashlib.sha256(server.payload).hexdigest() in msg
    assert "weights.pt" in msg
    assert _leftovers(models.cache_dir()) == []


def test_download_unreachable_says_offline(tmp_path):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = dataclasses.replace(models.REGISTRY["sam2.1-tiny"], url=f"http://127.0.0.1:{port}/x.pt")
    with pytest.raises(ModelError) as err:
        models.download_checkpoint(spec, timeout=5)
    msg = str(err.value)
    assert "offline" in msg
    assert str(models.cache_dir() / "sam2.1_hiera_tiny.pt") in msg  # where to place it by hand
    assert "local checkpoint" in msg
    assert _leftovers(models.cache_dir()) == []


def test_download_http_error(server):
    spec = dataclasses.replace(_spec(server, "0" * 64), url=server.url("missing.pt"))
    with pytest.raises(ModelError, match="404"):
        models.download_checkpoint(spec)


def test_unverified_download_refused_unless_allowed(server, monkeypatch):
    spec = _spec(server, None)
    digest = hashlib.sha256(server.payload).hexdigest()
    with pytest.raises(ModelError, match=digest):
        models.download_checkpoint(spec)
    assert _leftovers(models.cache_dir()) == []
    with pytest.warns(UserWarning, match=digest):
        path = models.download_checkpoint(spec, allow_unverified=True)
    assert path.read_bytes() == server.payload
    with pytest.raises(ModelError, match="no pinned SHA256"):  # cached but still unverified
        models.download_checkpoint(spec)
    monkeypatch.setenv("SAMUSA_ALLOW_UNVERIFIED", "1")
    with pytest.warns(UserWarning):
        assert models.download_checkpoint(spec) == path


def test_cached_file_with_wrong_hash_is_reported(server):
    spec = _spec(server, hashlib.sha256(server.payload).hexdigest())
    (models.cache_dir() / "weights.pt").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="damaged"):
        models.download_checkpoint(spec)
    assert server.requests == 0


def test_registry_model_offline_without_download(monkeypatch):
    with pytest.raises(ModelError, match="downloads are disabled"):
        models.load_model("sam2.1-tiny", device="cpu", allow_download=False)


def test_cache_dir_override(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "deeper"
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(target))
    assert models.cache_dir() == target and target.is_dir()
    monkeypatch.delenv("SAMUSA_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.cache_dir() == tmp_path / "home" / ".cache" / "samusa"


# --------------------------------------------------------------------------- devices


def test_resolve_device():
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert models.resolve_device("auto") == torch.device("cpu")
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device(" CPU ") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            models.resolve_device("cuda")
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        models.resolve_device("bogus")


def test_fp32_precision_disables_autocast_on_the_cpu(monkeypatch):
    monkeypatch.setenv("SAMUSA_PRECISION", "fp32")
    with models.autocast_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_a_model_default_auto_precision_follows_samusa_precision(monkeypatch):
    """LoadedModel.precision is "auto" unless set: the variable must still decide."""
    monkeypatch.setattr(models.device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv("SAMUSA_PRECISION", "fp32")
    assert models.resolve_precision("cpu", "auto") == "fp32"
    with models.autocast_context(torch.device("cpu"), "auto", "encoder"):
        assert not torch.is_autocast_enabled("cpu")
    assert models.resolve_precision("cpu", "bf16") == "bf16"  # an explicit choice wins
    monkeypatch.delenv("SAMUSA_PRECISION")
    assert models.resolve_precision("cpu", "auto") == "bf16"


def test_bf16_on_a_cpu_needs_amx_or_a_measured_gain(monkeypatch):
    """AVX512-BF16 without AMX ran SAM2 slower in bf16 than in float32 on the build machine
    (models/device.py): the flag alone does not choose bf16, a measured matmul does."""
    check = models.device.cpu_has_native_bf16.__wrapped__  # past the per-process cache
    monkeypatch.setattr(models.device, "_recorded_bf16_decision", lambda measure: measure())  # past the machine's record
    assert models.device.bf16_matmul_speedup(n=64, repeats=1) > 0
    monkeypatch.setattr(models.device, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}))
    monkeypatch.setattr(models.device, "bf16_matmul_speedup", lambda: 0.6)
    assert not check()
    monkeypatch.setattr(models.device, "bf16_matmul_speedup", lambda: 1.8)
    assert check()
    monkeypatch.setattr(models.device, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
    monkeypatch.setattr(models.device, "bf16_matmul_speedup", lambda: pytest.fail("AMX needs no measurement"))
    assert check()
    monkeypatch.setattr(models.device, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not check()


def test_the_bf16_decision_is_measured_once_per_machine_and_shared_by_every_process(monkeypatch, tmp_path):
    """A Dask worker started under load must not time bf16 differently from the serial run
    and compute other masks: the first measurement on a machine is recorded and reused."""
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path))
    decide = models.device._recorded_bf16_decision
    assert decide(lambda: False) is False
    assert decide(lambda: pytest.fail("a recorded machine is not measured again")) is False
    record = tmp_path / models.device.PRECISION_RECORD.format(key=models.device._machine_key())
    assert json.loads(record.read_text()) is False
    # another torch version (or CPU) has its own record, measured once, kept beside the first
    monkeypatch.setattr(models.device, "_machine_key", lambda: "another-machine")
    assert decide(lambda: True) is True
    assert decide(lambda: pytest.fail("measured twice")) is True
    assert len(list(tmp_path.glob("cpu-precision-*.json"))) == 2
    # a damaged record is measured over; an unwritable cache folder falls back to measuring
    (tmp_path / models.device.PRECISION_RECORD.format(key="another-machine")).write_text("not json")
    assert decide(lambda: False) is False
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(record / "inside-a-file"))
    assert decide(lambda: True) is True


def test_auto_precision_uses_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    monkeypatch.delenv("SAMUSA_PRECISION", raising=False)
    monkeypatch.setattr(models.device, "cpu_has_native_bf16", lambda: True)
    assert models.resolve_precision("cpu") == "bf16"
    with models.autocast_context(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(models.device, "cpu_has_native_bf16", lambda: False)
    assert models.resolve_precision("cpu") == "fp32"
    with models.autocast_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_cpu_runs_the_decoder_and_memory_encoder_in_float32_when_the_rest_is_bf16(monkeypatch):
    monkeypatch.delenv("SAMUSA_PRECISION", raising=False)
    assert models.stage_precision("cpu", "bf16", "encoder") == "bf16"
    assert models.stage_precision("cpu", "bf16", "memory_attention") == "bf16"
    assert models.stage_precision("cpu", "bf16", "heads") == "fp32"
    assert models.stage_precision("cpu", "bf16", "memory_encoder") == "fp32"
    assert models.stage_precision("cuda", "bf16", "heads") == "bf16"  # SAM2's own habit on GPUs
    with models.autocast_context("cpu", "bf16", "memory_attention"):
        assert torch.is_autocast_enabled("cpu")
        with models.autocast_context("cpu", "bf16", "heads"):  # float32 even inside a bf16 stage
            assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="unknown stage"):
        models.stage_precision("cpu", "bf16", "decoder")


def test_random_full_size_architectures_build_for_benchmarks():
    """`samusa bench --full` times the released architectures with random weights."""
    model = models.load_model("random:sam2.1-tiny", device="cpu")
    assert model.image_size == 1024
    assert model.metadata["source"] == "random" and model.metadata["trained"] is False
    assert "UNTRAINED" in model.spec.description


def test_unknown_precision_is_refused(monkeypatch):
    monkeypatch.setenv("SAMUSA_PRECISION", "fp8")
    with pytest.raises(DeviceError, match="precision must be one of"):
        models.resolve_precision("cpu")


def test_download_bad_url():
    spec = dataclasses.replace(models.REGISTRY["sam2.1-tiny"], url="not a url")
    with pytest.raises(ModelError, match="not a usable URL"):
        models.download_checkpoint(spec)
