"""Static checks of the Slicer extension, with no Slicer: the widgets the module code looks
up exist in its .ui file with the expected class, parameter bindings fit their types,
SAMUSA.json is a valid catalog entry, CMake ships every file the module imports, and
nothing heavy is imported when Slicer starts."""

from __future__ import annotations

import ast
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE = REPO / "SAMUSA" / "SAMUSA.py"
MODULE_PACKAGE = REPO / "SAMUSA" / "SAMUSAModule"
MODULE_FILES = [MODULE, *sorted(MODULE_PACKAGE.glob("*.py"))]
"""SAMUSA.py and its package (parameters, Logic, prompt tools, self-test): checked as one."""
UI = REPO / "SAMUSA" / "Resources" / "UI" / "SAMUSA.ui"
MODULE_CMAKE = REPO / "SAMUSA" / "CMakeLists.txt"
TOP_CMAKE = REPO / "CMakeLists.txt"
EXTENSION_JSON = REPO / "SAMUSA.json"
LIBRARY = REPO / "SAMUSALib"

# Python packages a Slicer install already has (Slicer bundles numpy and VTK).
SLICER_BUNDLED = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "numpy", "__main__"}

# slicer-extension-catalog-entry-schema-v1.0.2.json (Slicer/Slicer Schemas/): required keys,
# and the only keys allowed (additionalProperties is false).
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}
CATALOG_ALLOWED = CATALOG_REQUIRED | {
    "scm_revision", "scm_type", "build_dependencies", "dicom_support_rule", "build_subdirectory", "enabled", "tier",
}


@pytest.fixture(scope="module")
def module_ast() -> ast.Module:
    """One tree holding the top-level statements of every file of the module."""
    return ast.Module(body=[node for path in MODULE_FILES for node in ast.parse(path.read_text()).body], type_ignores=[])


@pytest.fixture(scope="module")
def ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def module_constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"SAMUSA.py defines no {name}")


def class_def(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"SAMUSA.py defines no class {name}")


def string_property(widget: ET.Element, name: str) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            text = prop.find("string")
            return text.text if text is not None else None
    return None


def cmake_list(path: Path, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", path.read_text(), re.S)
    assert match, f"{path.name} sets no {variable}"
    lines = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return [item for line in lines for item in line.split()]


def cmake_value(text: str, variable: str) -> str:
    match = re.search(rf'set\({variable}\s+"([^"]*)"\)', text)
    assert match, f"CMakeLists.txt sets no {variable}"
    return match.group(1)


# --------------------------------------------------------------------------- widgets


def test_every_widget_the_code_uses_is_in_the_ui_with_its_class(module_ast, ui_widgets):
    declared = module_constant(module_ast, "UI_WIDGETS")
    used = {
        node.attr
        for node in ast.walk(module_ast)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    # names reached through getattr(self.ui, name): string constants named like widgets
    widget_like = re.compile(r"^[a-z][a-z]+\w*(Button|Selector|ComboBox|Label|CheckBox|Bar)$")
    used |= {
        node.value
        for node in ast.walk(module_ast)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and widget_like.match(node.value)
    }
    assert used, "found no widget look-ups in SAMUSA.py"
    assert used <= set(declared), f"widgets used but missing from UI_WIDGETS: {sorted(used - set(declared))}"
    for name, cls in declared.items():
        assert name in ui_widgets, f"SAMUSA.ui has no widget named {name}"
        assert ui_widgets[name].get("class") == cls, f"{name} is a {ui_widgets[name].get('class')} in SAMUSA.ui, code expects {cls}"
    unused = set(declared) - used
    assert not unused, f"UI_WIDGETS lists widgets the code never uses: {sorted(unused)}"


def test_ui_file_declares_its_custom_widgets_and_mrml_scene_connections():
    root = ET.parse(UI).getroot()
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "SAMUSA"
    qt_classes = {"QWidget", "QLabel", "QComboBox", "QPushButton", "QToolButton", "QCheckBox", "QProgressBar"}
    custom = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert used - qt_classes <= custom, f"custom widgets not declared: {sorted(used - qt_classes - custom)}"
    mrml_widgets = {w.get("name") for w in root.iter("widget") if w.get("class", "").startswith("qMRML") and w is not top}
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)" and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert mrml_widgets == connected, f"MRML widgets without the scene: {sorted(mrml_widgets - connected)}"


def _annotations(module_ast) -> dict[str, str]:
    node = class_def(module_ast, "SAMUSAParameterNode")
    return {item.target.id: ast.unparse(item.annotation) for item in node.body if isinstance(item, ast.AnnAssign)}


def _enum_names(module_ast) -> dict[str, list[str]]:
    out = {}
    for node in module_ast.body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "enum.Enum" for b in node.bases):
            out[node.name] = [t.id for item in node.body if isinstance(item, ast.Assign) for t in item.targets]
    return out


def test_parameter_bindings_fit_their_types(module_ast, ui_widgets):
    annotations = _annotations(module_ast)
    enums = _enum_names(module_ast)
    bound = {}
    for name, widget in ui_widgets.items():
        parameter = string_property(widget, "SlicerParameterName")
        if parameter is None:
            continue
        assert parameter in annotations, f"{name} is bound to {parameter!r}, which SAMUSAParameterNode does not have"
        bound[parameter] = widget.get("class")
        annotation = annotations[parameter]
        cls = widget.get("class")
        if annotation in enums:
            assert cls == "QComboBox", f"{parameter} (enum) needs a QComboBox, not {cls}"
        elif annotation.startswith("Annotated[str") or annotation.startswith("Annotated[int"):
            assert "Choice(" in annotation and cls == "QComboBox", f"{parameter} needs Choice and a QComboBox"
        elif annotation == "bool":
            assert cls in ("QCheckBox", "QPushButton"), f"{parameter} (bool) cannot bind to {cls}"
        elif "vtkMRML" in annotation:
            assert cls == "qMRMLNodeComboBox", f"{parameter} (node) needs a qMRMLNodeComboBox"
            node_types = [s.text for p in ui_widgets[name].findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
            assert set(node_types) == set(re.findall(r"vtkMRML\w+", annotation)), f"{name} nodeTypes {node_types} vs {annotation}"
        else:
            raise AssertionError(f"no GUI connector for {parameter}: {annotation}")
    # every input control is bound (the panel keeps no state of its own)
    controls = {n for n, w in ui_widgets.items() if w.get("class") in ("QComboBox", "QCheckBox", "qMRMLNodeComboBox")}
    unbound = {n for n in controls if string_property(ui_widgets[n], "SlicerParameterName") is None}
    assert not unbound, f"controls without SlicerParameterName: {sorted(unbound)}"
    assert set(bound) == set(annotations) - {"segmentID", "promptMode"}


def test_enums_and_registries_agree_with_the_library(module_ast):
    enums = _enum_names(module_ast)
    assert enums["PromptMode"] == ["BOUNDARY", "REGION_POSITIVE", "REGION_NEGATIVE", "BOX"]  # stored in scenes: frozen
    assert enums["Direction"] == ["BOTH", "FORWARD", "BACKWARD"]
    mrml_tree = ast.parse((LIBRARY / "mrml" / "prompt_nodes.py").read_text())
    kinds = next(ast.literal_eval(n.value) for n in mrml_tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PROMPT_KINDS")
    prompt_values = [ast.literal_eval(item.value) for item in class_def(module_ast, "PromptMode").body if isinstance(item, ast.Assign)]
    assert sorted(prompt_values) == sorted(kinds)
    from SAMUSALib.engine import DIRECTIONS
    from SAMUSALib.models import REGISTRY

    direction_values = [ast.literal_eval(item.value) for item in class_def(module_ast, "Direction").body if isinstance(item, ast.Assign)]
    assert sorted(direction_values) == sorted(DIRECTIONS)
    assert list(module_constant(module_ast, "MODEL_IDS")) == list(REGISTRY)


def test_shortcut_table_names_real_methods(module_ast):
    shortcuts = module_constant(module_ast, "SHORTCUTS")
    widget = class_def(module_ast, "SAMUSAWidget")
    classes = [widget] + [class_def(module_ast, b.id) for b in widget.bases
                          if isinstance(b, ast.Name) and any(isinstance(n, ast.ClassDef) and n.name == b.id for n in module_ast.body)]
    methods = {f.name for cls in classes for f in cls.body if isinstance(f, ast.FunctionDef)}
    keys = [key for key, _ in shortcuts]
    assert len(keys) == len(set(keys)), "a key is bound twice"
    for key, method in shortcuts:
        assert method in methods, f"shortcut {key} calls SAMUSAWidget.{method}, which does not exist"
    assert {"Ctrl+Z", "Escape", "P", "S", "E"} <= set(keys)


# --------------------------------------------------------------------------- start-up cost


def test_nothing_heavy_is_imported_when_slicer_starts(module_ast):
    allowed = {"enum", "importlib", "logging", "os", "sys", "time", "typing", "qt", "vtk", "slicer", "SAMUSAModule"}
    for node in module_ast.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, f"SAMUSA.py imports {name} at module level: slows Slicer's start-up"


# --------------------------------------------------------------------------- packaging


def _module_file(name: str) -> Path | None:
    """The file of SAMUSALib module `name` ("engine", "litemedsam.network"), or None."""
    base = LIBRARY.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> list[str]:
    """Dotted package parts (below SAMUSALib) that relative imports in `path` start from."""
    parts = list(path.relative_to(LIBRARY).parts[:-1])
    return parts


def _samusalib_imports(path: Path, tree: ast.Module | None = None) -> set[str]:
    """SAMUSALib modules (dotted names below SAMUSALib) imported anywhere in a file,
    functions included; a submodule brings its parent packages."""
    tree = tree or ast.parse(path.read_text())
    in_library = LIBRARY in path.parents
    found: set[str] = set()

    def add(parts: list[str], names: list[str] | None = None) -> None:
        base = ".".join(parts)
        if names is not None:
            for name in names:
                dotted = f"{base}.{name}" if base else name
                if _module_file(dotted) is not None:  # `from . import boundary`
                    found.add(dotted)
        if base:
            found.add(base)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "SAMUSALib" and len(parts) > 1:
                    add(parts[1:])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [alias.name for alias in node.names]
            if node.level and in_library:
                package = _package_of(path)
                package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                add(package + (module.split(".") if module else []), names)
            elif module == "SAMUSALib":
                add([], names)
            elif module.startswith("SAMUSALib."):
                add(module.split(".")[1:], names)
    closed = set(found)
    for name in found:  # importing a.b runs a/__init__.py
        parts = name.split(".")
        closed |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return closed


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"SAMUSALib", "__future__"}


def import_closure(module_ast) -> dict[str, Path]:
    """{dotted SAMUSALib module: its file} for everything SAMUSA.py imports, transitively."""
    todo = _samusalib_imports(MODULE, module_ast)
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        assert path is not None, f"SAMUSALib.{name} is imported but has no file"
        seen[name] = path
        todo |= _samusalib_imports(path) - set(seen)
    return seen


def test_cmake_ships_exactly_the_library_files_the_module_imports(module_ast):
    closure = import_closure(module_ast)
    assert {"mrml", "engine", "models"} <= set(closure)
    shipped = cmake_list(MODULE_CMAKE, "SAMUSALIB_PYTHON_SCRIPTS")
    expected = {"SAMUSALib/__init__.py"} | {path.relative_to(REPO).as_posix() for path in closure.values()}
    assert set(shipped) == expected, (
        f"missing from CMake: {sorted(expected - set(shipped))}; listed but never imported: {sorted(set(shipped) - expected)}"
    )
    for item in shipped:
        assert (REPO / item).is_file(), f"CMake lists {item}, which does not exist"


def test_cmake_ships_the_library_s_weights():
    shipped = cmake_list(MODULE_CMAKE, "SAMUSALIB_RESOURCES")
    present = sorted(p.relative_to(REPO).as_posix() for p in (LIBRARY / "weights").glob("*.pt"))
    assert present and shipped == present, f"weights in SAMUSALib/weights: {present}; CMake ships {shipped}"


def test_cmake_ships_the_module_and_its_resources(module_ast):
    scripts = cmake_list(MODULE_CMAKE, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(MODULE_CMAKE, "MODULE_PYTHON_RESOURCES")
    package = [path.relative_to(REPO / "SAMUSA").as_posix() for path in MODULE_FILES[1:]]
    assert package and scripts == ["${MODULE_NAME}.py", *package], f"CMake ships {scripts}; the module's files: {package}"
    resources = [r.replace("${MODULE_NAME}", "SAMUSA") for r in resources]
    for item in resources:
        assert (REPO / "SAMUSA" / item).is_file(), f"resource {item} does not exist"
    used = {node.value for node in ast.walk(module_ast) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[\w/-]+\.(ui|txt|png)", node.value)}
    assert "UI/SAMUSA.ui" in used and "requirements.txt" in used
    for item in used:
        assert any(r.endswith(item) for r in resources), f"SAMUSA.py uses resource {item}, not shipped by CMake"
    assert "Resources/Icons/SAMUSA.png" in resources
    text = MODULE_CMAKE.read_text()
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert "SOURCE_DIR ${PROJECT_SOURCE_DIR}" in text  # SAMUSALib copied from the repository root


def test_the_module_is_one_file_beside_a_package_of_small_files():
    """Slicer tries every .py file in a module's folder as a module of its own, so the parts
    live in the SAMUSAModule package; each stays readable (under 700 lines); SAMUSALogic and
    SAMUSATest are reachable from SAMUSA.py, where Slicer and the console look them up."""
    top = sorted(p.name for p in (REPO / "SAMUSA").glob("*.py"))
    assert top == ["SAMUSA.py"], f"Python files beside SAMUSA.py, which Slicer would load as modules: {top}"
    for path in MODULE_FILES:
        lines = len(path.read_text().splitlines())
        assert lines <= 700, f"{path.relative_to(REPO)} has {lines} lines"
    imported = {alias.asname or alias.name for node in ast.parse(MODULE.read_text()).body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {"SAMUSALogic", "SAMUSATest", "SAMUSAParameterNode", "InstallError"} <= imported


def test_shipped_files_import_only_what_slicer_has_or_installs(module_ast):
    from SAMUSALib.dependencies import REQUIRED

    required = {r.module: r.label for r in REQUIRED}
    for path in list(import_closure(module_ast).values()) + [LIBRARY / "__init__.py"]:
        name = path.relative_to(LIBRARY).as_posix()
        extra = _third_party_imports(path) - SLICER_BUNDLED - set(required)
        assert not extra, f"SAMUSALib/{name} imports {sorted(extra)}: neither bundled with Slicer nor installed on first use"
    requirements = (REPO / "SAMUSA" / "Resources" / "requirements.txt").read_text()
    listed = {re.split(r"[<>=~!\s#]", line.strip())[0].lower() for line in requirements.splitlines()
              if line.strip() and not line.strip().startswith("#")}
    assert not listed & {"torch", "torchvision", "sam2"}, "torch and sam2 are installed separately (see SAMUSA.py)"
    import_to_package = {"hydra": "hydra-core", "skimage": "scikit-image", "PIL": "pillow"}
    for module in set(required) - {"torch", "sam2"}:
        assert import_to_package.get(module, module).lower() in listed, f"{module} is required but not in requirements.txt"


def test_extension_json_is_a_catalog_entry():
    entry = json.loads(EXTENSION_JSON.read_text())
    assert CATALOG_REQUIRED <= set(entry), f"missing {sorted(CATALOG_REQUIRED - set(entry))}"
    assert set(entry) <= CATALOG_ALLOWED, f"keys the schema forbids: {sorted(set(entry) - CATALOG_ALLOWED)}"
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["category"] == "Segmentation"
    assert entry["scm_url"].startswith("https://github.com/")
    assert isinstance(entry["build_dependencies"], list) and "PyTorch" in entry["build_dependencies"]
    assert all(isinstance(d, str) for d in entry["build_dependencies"])
    assert isinstance(entry.get("tier", 1), int) and 1 <= entry.get("tier", 1) <= 5
    assert entry.get("scm_type", "git") in ("git", "local")


def test_top_level_cmake_describes_the_extension():
    text = TOP_CMAKE.read_text()
    entry = json.loads(EXTENSION_JSON.read_text())
    assert re.search(r"project\(SAMUSA\)", text)
    assert cmake_value(text, "EXTENSION_CATEGORY") == entry["category"]
    assert len(cmake_value(text, "EXTENSION_DESCRIPTION")) > 60
    assert cmake_value(text, "EXTENSION_HOMEPAGE").startswith(entry["scm_url"])
    assert cmake_value(text, "EXTENSION_ICONURL").endswith("SAMUSA/Resources/Icons/SAMUSA.png")
    assert set(cmake_value(text, "EXTENSION_DEPENDS").split()) == set(entry["build_dependencies"])
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(SAMUSA)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text, f"CMakeLists.txt lacks {line}"


def test_icon_is_a_square_png():
    data = (REPO / "SAMUSA" / "Resources" / "Icons" / "SAMUSA.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == height and width >= 64
