#!/usr/bin/env python3
"""The offline part of the Slicer Extensions Index's checks of a submission, run on this
repository (the index runs its own scripts/check_description_files.py on SAMUSA.json after
cloning the repository; these are the same rules, written here so CI can hold them):

- SAMUSA.json valid against catalog schema v1.0.2 (scripts/schemas/: a copy of
  Slicer/Slicer Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json), with a category
  the index knows and an scm_url of the form scheme://host/path with scheme git or https;
- the extension name (the description file's name) not starting with "Slicer", the git
  repository name containing it ("SlicerSAMUSA");
- the top-level CMakeLists.txt project() name equal to the description file's name;
- EXTENSION_ICONURL and a non-empty EXTENSION_SCREENSHOTURLS, http(s) URLs; those that point
  into this repository (raw.githubusercontent.com/<owner>/<repo>/<branch>/<path>) must name
  a PNG/JPEG/GIF file that exists here (offline stand-in for "resolves to an image");
- a licence file in the repository root; the tracked files under 100 MB.

Not checked here (needs the network or GitHub): that the URLs resolve once the repository is
public, the GitHub topic ``3d-slicer-extension``, the clone itself.

Usage: python scripts/check_extension_description.py [SAMUSA.json]  (exit status 1 on failure)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "scripts" / "schemas" / "slicer-extension-catalog-entry-schema-v1.0.2.json"

KNOWN_CATEGORIES = ("Segmentation", "Ultrasound", "Sequences", "Quantification", "Utilities")
"""The categories of the index's accepted list (ACCEPTED_EXTENSION_CATEGORIES) that fit SAMUSA."""

LICENCE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")
MAX_REPOSITORY_BYTES = 100 * 1024 * 1024
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")

_TYPES = {"string": str, "array": list, "boolean": bool, "object": dict, "integer": int}


def schema_errors(value, schema: dict, where: str = "") -> list[str]:
    """Errors of `value` against the JSON-schema keywords catalog schema v1.0.2 uses
    (type, required, additionalProperties, properties, enum, minimum, maximum, items)."""
    errors = []
    kind = schema.get("type")
    if kind:
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (kind == "integer" and isinstance(value, bool)):
            return [f"{where or 'document'}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: {value} is above {schema['maximum']}")
    if kind == "object":
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where or 'document'}: '{key}' is required")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{where}/{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where or 'document'}: '{key}' is not allowed (additionalProperties is false)")
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{index}]")
    return errors


def _cmake_value(text: str, variable: str) -> str | None:
    match = re.search(rf'set\s*\(\s*{variable}\s*"([^"]*)"\s*\)', text, re.I)
    return match.group(1).strip() if match else None


def _local_image(url: str, repository: str) -> str | None:
    """For a raw.githubusercontent.com URL into this repository: why it would not resolve to
    an image (None when the file is here and is one); other URLs: None (not checkable offline)."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc != "raw.githubusercontent.com":
        return None
    segments = parts.path.strip("/").split("/")
    if len(segments) < 4 or segments[1] != repository:
        return None
    path = ROOT.joinpath(*segments[3:])
    if not path.is_file():
        return f"{url} names {path.relative_to(ROOT)}, which is not in the repository"
    if not path.read_bytes()[:8].startswith(IMAGE_MAGIC):
        return f"{url} names {path.relative_to(ROOT)}, which is not a PNG, JPEG or GIF image"
    return None


def _tracked_bytes() -> int:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / name).stat().st_size for name in listing.decode().split("\0") if name and (ROOT / name).is_file())


def check(description: Path) -> list[tuple[str, str | None]]:
    """[(check, None when it passed, else why not)] for one description file."""
    name = description.stem
    results: list[tuple[str, str | None]] = []
    try:
        entry = json.loads(description.read_text())
    except json.JSONDecodeError as error:
        return [("parse description file", str(error))]
    schema = json.loads(SCHEMA.read_text())
    errors = schema_errors(entry, schema)
    if not errors and not str(entry.get("$schema", "")).split("#")[0].endswith(SCHEMA.name):
        errors.append(f"$schema is {entry.get('$schema')!r}, not catalog schema v1.0.2")
    results.append(("JSON schema v1.0.2", "; ".join(errors) or None))
    category = entry.get("category")
    results.append(("category", None if category in KNOWN_CATEGORIES else f"category {category!r} is not one the index knows"))
    url = str(entry.get("scm_url", ""))
    parts = urllib.parse.urlsplit(url)
    syntax = None
    if "://" not in url or not parts.netloc or not parts.path.strip("/"):
        syntax = f"scm_url {url!r} does not match scheme://host/path"
    elif parts.scheme not in ("git", "https"):
        syntax = f"scm_url scheme is {parts.scheme!r}; the index accepts git and https"
    results.append(("SCM URL syntax", syntax))
    repository = Path(parts.path).stem
    results.append(("git repository name", None if "slicer" in repository.lower()
                    else f"repository name {repository!r} should be 'Slicer{repository}'"))
    results.append(("extension name", f"extension name {name!r} starts with 'Slicer'" if name.lower().startswith("slicer") else None))
    cmake = (ROOT / "CMakeLists.txt").read_text()
    project = re.findall(r"project\s*\(\s*([^\s)]+)", cmake, re.I)
    results.append(("CMakeLists.txt project()", None if project and project[0].strip("\"'") == name
                    else f"project() is {project[:1]}, the description file is {name}.json"))
    icon = _cmake_value(cmake, "EXTENSION_ICONURL")
    screenshots = (_cmake_value(cmake, "EXTENSION_SCREENSHOTURLS") or "").split()
    problems = []
    if not icon or not icon.startswith("http"):
        problems.append(f"EXTENSION_ICONURL {icon!r} is not an http(s) URL")
    if not screenshots:
        problems.append("EXTENSION_SCREENSHOTURLS is empty")
    for image_url in ([icon] if icon else []) + screenshots:
        if not image_url.startswith("http"):
            problems.append(f"{image_url!r} is not an http(s) URL")
        elif (why := _local_image(image_url, repository)) is not None:
            problems.append(why)
    results.append(("icon and screenshot URLs", "; ".join(problems) or None))
    licence = next((n for n in LICENCE_NAMES if (ROOT / n).is_file()), None)
    results.append(("licence file", None if licence else "no licence file in the repository root"))
    size = _tracked_bytes()
    results.append(("repository size", None if size < MAX_REPOSITORY_BYTES else f"tracked files take {size / 2**20:.0f} MB (limit 100 MB)"))
    return results


def main(argv: list[str]) -> int:
    description = Path(argv[1]) if len(argv) > 1 else ROOT / "SAMUSA.json"
    results = check(description)
    print(f"## Extension: {description.stem} (offline checks)")
    for name, problem in results:
        print(f"- {'ok  ' if problem is None else 'FAIL'} {name}" + ("" if problem is None else f": {problem}"))
    print("- not checked offline: the URLs resolve on GitHub, the topic 3d-slicer-extension, the clone")
    return 0 if all(problem is None for _, problem in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
