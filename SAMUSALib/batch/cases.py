"""The cases of a batch: which input, which prompts, which output.

Three ways to name them:

- a folder: every image, volume, video or sub-folder of frames in it is a case, named
  after the file (``a.nrrd`` -> case ``a``);
- a glob (``'scans/*.nii.gz'``, quoted so the shell leaves it) or several inputs;
- a manifest, CSV (header ``input,prompts,output``; ``id`` optional) or JSON (a list of
  objects with those keys, or ``{"cases": [...]}``); relative paths are relative to the
  manifest's folder. A row without prompts takes ``--prompts``; without output,
  ``OUT/<id>.seg.nrrd``.

``--prompts`` is one file for every case, or a folder holding ``<id>.json`` or
``<id>.mrk.json`` per case. Every problem found here is an InputError naming the case,
raised before any work is submitted.
"""

from __future__ import annotations

import csv
import glob
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import DICOM_SUFFIXES, ITK_SUFFIXES, PICTURE_SUFFIXES, SEG_SUFFIX, VIDEO_SUFFIXES, _natural_key

MANIFEST_SUFFIXES = (".csv", ".json")
INPUT_SUFFIXES = ITK_SUFFIXES + PICTURE_SUFFIXES + VIDEO_SUFFIXES + DICOM_SUFFIXES + (".gif",)
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class BatchCase:
    """One case of a batch; paths are absolute."""

    id: str
    input: Path
    prompts: Path
    output: Path


def is_manifest(path: str | Path) -> bool:
    return Path(path).suffix.lower() in MANIFEST_SUFFIXES and not str(path).lower().endswith(".mrk.json")


def is_batch(inputs: list[str], out: str | None) -> bool:
    """A batch when several inputs, a glob, a manifest, or a folder with an output folder
    (a folder with ``--out X.seg.nrrd`` stays one cine of picture frames)."""
    if len(inputs) != 1:
        return True
    only = inputs[0]
    if any(c in only for c in GLOB_CHARS) and not Path(only).exists():
        return True
    if is_manifest(only):
        return True
    return Path(only).is_dir() and not str(out or "").lower().endswith(SEG_SUFFIX)


def case_id(path: Path) -> str:
    name = path.name
    for suffix in sorted(INPUT_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _readable(path: Path) -> bool:
    """An input a batch folder or glob can hold: an image, volume, video or DICOM file (by
    name, or by its preamble for DICOM files without one), or a folder of picture frames.
    Other folders (the batch's own output folder, notes) are not cases: taken as ones, a
    batch stopped at the first with "no prompts for case ..."."""
    from ..dicom.reading import is_dicom

    if path.name.startswith("."):
        return False
    if path.is_dir():
        return any(p.is_file() and p.name.lower().endswith(PICTURE_SUFFIXES) for p in path.iterdir())
    name = path.name.lower()
    if name.endswith(SEG_SUFFIX):
        return False
    return name.endswith(INPUT_SUFFIXES) or ("." not in name and is_dicom(path))


def _inputs(inputs: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.exists():
            if path.is_dir() and len(inputs) == 1:
                entries = [p for p in path.iterdir() if _readable(p)]
                if not entries:
                    raise InputError(f"found no images, volumes, videos or frame folders in {path}")
                found += sorted(entries, key=lambda p: _natural_key(p.name))
            else:
                found.append(path)
        elif any(c in raw for c in GLOB_CHARS):
            matches = sorted((Path(m) for m in glob.glob(raw, recursive=True)), key=lambda p: _natural_key(str(p)))
            matches = [m for m in matches if _readable(m)]
            if not matches:
                raise InputError(f"the pattern {raw} matches no input file")
            found += matches
        else:
            raise InputError(f"no such file or folder: {path}")
    return [p.resolve() for p in found]


def _prompts_for(identifier: str, prompts: Path | None, where: str) -> Path:
    if prompts is None:
        raise InputError(f"case {identifier} ({where}) has no prompts: give --prompts FILE, or a folder with {identifier}.json")
    if prompts.is_dir():
        for name in (f"{identifier}.json", f"{identifier}.mrk.json"):
            if (prompts / name).is_file():
                return (prompts / name).resolve()
        raise InputError(f"no prompts for case {identifier}: expected {prompts / (identifier + '.json')} or .mrk.json")
    if not prompts.is_file():
        raise InputError(f"prompts file {prompts} does not exist")
    return prompts.resolve()


def _output_for(identifier: str, out: Path | None, where: str) -> Path:
    if out is None:
        raise InputError(f"case {identifier} ({where}) has no output: give --out FOLDER")
    if str(out).lower().endswith(SEG_SUFFIX):
        raise InputError(f"with many inputs --out must be a folder, not {out}; each case writes OUT/<case>{SEG_SUFFIX}")
    return (out / f"{identifier}{SEG_SUFFIX}").resolve()


def _manifest_rows(path: Path) -> list[dict]:
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        else:
            data = json.loads(path.read_text())
            rows = data.get("cases") if isinstance(data, dict) else data
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise InputError(f"could not read the manifest {path}: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"manifest {path} must be a list of rows with input, prompts and output")
    if not rows:
        raise InputError(f"manifest {path} has no rows")
    return rows


def from_manifest(path: Path, prompts: Path | None, out: Path | None) -> list[BatchCase]:
    base = path.resolve().parent
    cases = []
    for number, row in enumerate(_manifest_rows(path), start=2 if path.suffix.lower() == ".csv" else 1):
        row = {str(k).strip().lower(): (str(v).strip() if v is not None else "") for k, v in row.items()}
        where = f"{path.name} row {number}"
        if not row.get("input"):
            raise InputError(f"{where} has no input")
        source = Path(row["input"]) if Path(row["input"]).is_absolute() else base / row["input"]
        if not source.exists():
            raise InputError(f"{where}: input {source} does not exist")
        identifier = row.get("id") or case_id(source)
        given = row.get("prompts")
        prompt_file = (base / given).resolve() if given else _prompts_for(identifier, prompts, where)
        if given and not prompt_file.is_file():
            raise InputError(f"{where}: prompts file {prompt_file} does not exist")
        output = row.get("output")
        if output:
            target = (base / output).resolve()
            if not target.name.lower().endswith(SEG_SUFFIX):
                raise InputError(f"{where}: output {target} must end with {SEG_SUFFIX}")
        else:
            target = _output_for(identifier, out, where)
        cases.append(BatchCase(identifier, source.resolve(), prompt_file, target))
    return cases


def discover(inputs: list[str], prompts: str | None, out: str | None) -> list[BatchCase]:
    """The batch's cases, checked: inputs exist, each has prompts, outputs are distinct
    and their folders exist."""
    prompts_path = Path(prompts) if prompts else None
    out_path = Path(out) if out else None
    if len(inputs) == 1 and is_manifest(inputs[0]):
        manifest = Path(inputs[0])
        if not manifest.is_file():
            raise InputError(f"manifest {manifest} does not exist")
        cases = from_manifest(manifest, prompts_path, out_path)
    else:
        cases = []
        for path in _inputs(inputs):
            identifier = case_id(path)
            cases.append(BatchCase(identifier, path, _prompts_for(identifier, prompts_path, str(path)),
                                   _output_for(identifier, out_path, str(path))))
    seen: dict[Path, str] = {}
    ids: set[str] = set()
    for case in cases:
        if case.output in seen:
            raise InputError(f"cases {seen[case.output]} and {case.id} would both write {case.output}; give distinct outputs")
        if case.id in ids:
            raise InputError(f"two cases are named {case.id}; give distinct ids (manifest column id)")
        seen[case.output] = case.id
        ids.add(case.id)
        if not case.output.parent.is_dir():
            raise InputError(f"output folder {case.output.parent} (case {case.id}) does not exist; create it first")
    return cases
