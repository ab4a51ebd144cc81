"""The Extensions Index's offline checks of a submission (scripts/check_extension_description.py)
pass on this repository, and each catches the mistake it is there for."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_extension_description", REPO / "scripts" / "check_extension_description.py")
checker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checker)


def test_this_repository_passes_the_offline_checks():
    results = checker.check(REPO / "SAMUSA.json")
    failed = [(name, why) for name, why in results if why is not None]
    assert not failed, failed
    assert {name for name, _ in results} >= {"JSON schema v1.0.2", "category", "SCM URL syntax", "git repository name",
                                              "extension name", "CMakeLists.txt project()", "icon and screenshot URLs",
                                              "licence file", "repository size"}
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]  # as pyproject.toml declares


@pytest.mark.parametrize("change, check, words", [
    ({"categry": "Segmentation"}, "JSON schema v1.0.2", "not allowed"),
    ({"tier": 9}, "JSON schema v1.0.2", "above 5"),
    ({"category": "Ultrasound segmentation"}, "category", "not one the index knows"),
    ({"scm_url": "github.com/SAMUSA-project/SlicerSAMUSA"}, "SCM URL syntax", "scheme://host/path"),
    ({"scm_url": "ftp://github.com/SAMUSA-project/SlicerSAMUSA"}, "SCM URL syntax", "git and https"),
    ({"scm_url": "https://github.com/SAMUSA-project/SAMUSA"}, "git repository name", "SlicerSAMUSA"),
])
def test_each_check_catches_its_mistake(tmp_path, change, check, words):
    entry = json.loads((REPO / "SAMUSA.json").read_text())
    entry.update(change)
    entry.pop("category") if "categry" in change else None
    description = tmp_path / "SAMUSA.json"
    description.write_text(json.dumps(entry))
    results = dict(checker.check(description))
    assert results[check] is not None and words in results[check], results


def test_names_and_images_are_checked(tmp_path):
    entry = (REPO / "SAMUSA.json").read_text()
    renamed = tmp_path / "SlicerSAMUSA.json"
    renamed.write_text(entry)
    results = dict(checker.check(renamed))
    assert "starts with 'Slicer'" in results["extension name"]
    assert "project()" in results["CMakeLists.txt project()"]
    assert checker._local_image("https://raw.githubusercontent.com/SAMUSA-project/SlicerSAMUSA/main/README.md",
                                "SlicerSAMUSA").endswith("not a PNG, JPEG or GIF image")
    assert "not in the repository" in checker._local_image(
        "https://raw.githubusercontent.com/SAMUSA-project/SlicerSAMUSA/main/Resources/Screenshots/none.png", "SlicerSAMUSA")
