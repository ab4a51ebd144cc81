"""Model comparison: `samusa eval --model A --model B [--boundary-encoding E ...]`.

One protocol (image, video or volume) on the same cases for every variant: each model,
and for a model that turns boundary or region clicks into prompts it understands (an
image-only family such as LiteMedSAM), each encoding asked for. A model that reads every
prompt itself (SAM2, SAMUSA-Lite) runs once whatever the encodings. Each variant's full
report goes to ``<out>/<variant>/`` (results.json, summary.md, plots, as a one-model run
writes); the comparison, one row per variant side by side, to ``comparison.json``,
``comparison.md`` and (image protocol) ``dice_vs_clicks.png``.

Frames are encoded once per model for all its encodings (`shared_embeddings`), so the
extra encodings cost decoder time only. This replaces LiteMedSAM's own comparison script:
``docs/litemedsam_results.md`` shows the commands behind its tables.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError

log = logging.getLogger("samusa")

CLICKS = (1, 3, 5, 10)


@dataclass
class Variant:
    """One column of the comparison: a model, with the encodings its backend is given
    (None: the backend's own default, or a model that reads the prompt itself)."""

    model: str
    boundary_encoding: str | None = None
    region_encoding: str | None = None

    @property
    def name(self) -> str:
        parts = [self.model]
        if self.boundary_encoding:
            parts.append(f"boundary={self.boundary_encoding}")
        if self.region_encoding:
            parts.append(f"region={self.region_encoding}")
        return " ".join(parts)

    @property
    def folder(self) -> str:
        return re.sub(r"[^A-Za-z0-9.+=-]+", "_", self.name.replace(" ", "__")).strip("_") or "model"


def encodings_of(model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(boundary encodings, region encodings) a loaded model's backend accepts; empty for a
    model that reads boundary and region clicks itself."""
    if model.metadata.get("boundary_native") or model.spec.family != "litemedsam":
        return (), ()
    from ..backends.litemedsam.encodings import BOUNDARY_ENCODINGS, REGION_ENCODINGS

    return tuple(BOUNDARY_ENCODINGS), tuple(REGION_ENCODINGS)


def check_encoding_names(boundary: list[str], region: list[str]) -> None:
    """An InputError naming the choices for an encoding no family knows (checked before
    any model loads)."""
    from ..backends.litemedsam.encodings import BOUNDARY_ENCODINGS, REGION_ENCODINGS

    for asked, known, what in ((boundary, BOUNDARY_ENCODINGS, "boundary"), (region, REGION_ENCODINGS, "region")):
        unknown = [e for e in asked if e not in known]
        if unknown:
            raise InputError(f"unknown {what} encoding {unknown[0]!r}; use {', '.join(known)}")


def variants_for(model_name: str, model, boundary: list[str], region: list[str]) -> list[Variant]:
    """The variants of one model: every (boundary, region) encoding pair asked for that it
    accepts; one plain variant for a model without encodings. Unknown names are an InputError."""
    known_boundary, known_region = encodings_of(model)
    if not known_boundary and not known_region:
        if boundary or region:
            log.warning("model %s reads boundary and region clicks itself: its encodings are not varied", model_name)
        return [Variant(model_name)]
    for asked, known, what in ((boundary, known_boundary, "boundary"), (region, known_region, "region")):
        unknown = [e for e in asked if e not in known]
        if unknown:
            raise InputError(f"unknown {what} encoding {unknown[0]!r} for {model_name}; use {', '.join(known)}")
    return [Variant(model_name, b, r) for b in (boundary or [None]) for r in (region or [None])]


def factory_for(model, variant: Variant, make_session: Callable) -> Callable:
    """A session factory setting the variant's encodings on each new session's backend."""

    def make(frames):
        session = make_session(frames)
        if variant.boundary_encoding:
            session.backend.boundary_encoding = variant.boundary_encoding
        if variant.region_encoding:
            session.backend.region_encoding = variant.region_encoding
        return session

    return make


@contextlib.contextmanager
def frames_encoded_once(model, megabytes: int = 1024):
    """Inside the block a model's frames are encoded once for all its variants (where its
    backend can share embeddings across sessions; elsewhere nothing changes)."""
    if model.spec.family != "litemedsam":
        yield
        return
    from ..backends.litemedsam.backend import shared_embeddings

    with shared_embeddings(megabytes):
        yield


# ----------------------------------------------------------------------- the comparison report
def _mean(stats: dict | None) -> float | None:
    return None if not stats else stats.get("mean")


def _at(series: list, k: int):
    return _mean(series[min(k, len(series)) - 1]) if series else None


def rows(protocol: str, summaries: dict[str, dict]) -> list[dict]:
    """One flat row per (variant, prompt type or protocol variant), ready for a table."""
    out = []
    for variant, summary in summaries.items():
        for group, s in summary.items():
            row: dict = {"variant": variant, "group": group, "n": s.get("records")}
            if protocol == "image":
                for k in CLICKS:
                    if k <= len(s["dice_by_clicks"]):  # a box is one click; never repeat the last value
                        row[f"dice@{k}"] = _at(s["dice_by_clicks"], k)
                row["final_dice"] = _mean(s["final_dice"])
                row.update({f"noc@{t}": v["mean"] for t, v in s["clicks_to"].items()})
                row["s/click"] = s["seconds_per_click"]
            elif protocol == "video":
                row.update({"mean_dice": _mean(s["mean_dice"]), "mean_iou": _mean(s["mean_iou"]),
                            "interventions": _mean(s["interventions"]), "clicks/frame": _mean(s["clicks_per_frame"]),
                            "s/frame": s["seconds_per_frame"]})
            else:
                row.update({"dice": _mean(s["dice"]), "iou": _mean(s["iou"]), "hd95": _mean(s["hd95"]),
                            "s/frame": s["seconds_per_frame"]})
            out.append(row)
    return out


def _cell(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(protocol: str, table: list[dict], data: str, untrained: list[str]) -> str:
    """comparison.md: one table, a row per variant and prompt type, variants side by side."""
    lines = [f"# Model comparison ({protocol} protocol)", "", f"Data: `{data}`", ""]
    if untrained:
        lines += [f"**UNTRAINED** (random weights; scores only show the harness runs): {', '.join(untrained)}", ""]
    for group in dict.fromkeys(r["group"] for r in table):
        picked = [r for r in table if r["group"] == group]
        columns = [c for c in dict.fromkeys(c for r in picked for c in r) if c not in ("variant", "group")]
        lines += [f"## {group}", "", "| variant | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += ["| " + r["variant"] + " | " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in picked]
        lines.append("")
    lines.append("Each variant's full report is in its own folder (results.json, summary.md, plots).")
    return "\n".join(lines) + "\n"


def plot(summaries: dict[str, dict], path: Path) -> Path | None:
    """Image protocol: mean Dice after k clicks, a line per variant, a panel per prompt type."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = list(dict.fromkeys(g for s in summaries.values() for g in s))
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.8), sharey=True, squeeze=False)
    for ax, group in zip(axes[0], groups):
        for variant, summary in summaries.items():
            series = summary.get(group, {}).get("dice_by_clicks") or []
            if series:
                ax.plot(range(1, len(series) + 1), [_mean(s) for s in series], "-o", markersize=3, label=variant)
        ax.set_title(group)
        ax.set_xlabel("clicks")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean Dice")
    axes[0][0].set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
