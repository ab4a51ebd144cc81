"""Slicer's own Python layer over slicer-core's MRML, with stand-ins only for what is C++.

`install()` (called once, from Testing/conftest.py, before anything imports ``slicer``)
builds the ``slicer`` package as a real Slicer does: Slicer 5.12.3's
``Base/Python/slicer/__init__.py`` from ``../shared/slicer-python`` runs with a package
path of that folder first and PyPI slicer-core's ``slicer`` folder second, and the one
CMake-generated file, ``slicer/kits.py``, names slicer-core's ``slicer_core`` kit (the
vtkMRML* and vtkSlicer* classes). So ``slicer.util``, ``slicer.ScriptedLoadableModule``,
``slicer.parameterNodeWrapper``, ``slicer.i18n`` and ``slicer.testing`` are Slicer's own
files, unchanged. ``qt`` and ``ctk`` come from this folder (`qt.py`, `ctk.py`), and the
qMRML/qSlicer classes and ``slicer.app`` from `qslicer.py`.

`SlicerSession` is one application run: a fresh scene with the module logics, ``slicer.app``,
``slicer.mrmlScene``, ``slicer.modules`` (Segmentations, Sequences, Markups, Volumes and the
scripted modules it loads)."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SLICER_PYTHON = Path(os.environ.get("SAMUSA_SLICER_PYTHON", REPO.parent / "shared" / "slicer-python"))
SLICER_LAYER = SLICER_PYTHON / "slicer"
SLICER_LAYER_VERSION = "5.12.3"

_installed = False


def available() -> str | None:
    """None when Slicer's layer and slicer-core are both there, else why not."""
    if not (SLICER_LAYER / "ScriptedLoadableModule.py").is_file():
        return f"Slicer's Python layer is not at {SLICER_LAYER} (../shared/slicer-python beside the checkout)"
    if importlib.util.find_spec("slicer_core") is None:
        return "slicer-core is not installed (pip install -r requirements.txt)"
    return None


def _core_paths() -> list[str]:
    loaded = sys.modules.get("slicer")
    if loaded is not None and getattr(loaded, "__file__", "") and Path(loaded.__file__).parent != SLICER_LAYER:
        return list(loaded.__path__)
    spec = importlib.util.find_spec("slicer")
    return [p for p in spec.submodule_search_locations if Path(p) != SLICER_LAYER]


def install() -> bool:
    """Make ``import slicer``, ``qt`` and ``ctk`` what a Slicer 5.12.3 scripted module sees.
    Returns False (and changes nothing) when the layer or slicer-core is missing."""
    global _installed
    if _installed:
        return True
    if available() is not None:
        return False
    sys.path.insert(0, str(HERE))  # qt, ctk
    import ctk  # noqa: F401
    import qt  # noqa: F401

    core = _core_paths()
    for name in [m for m in sys.modules if m == "slicer" or m.startswith("slicer.")]:
        del sys.modules[name]
    kits = types.ModuleType("slicer.kits")
    kits.available_kits = ["slicer_core"]  # CMake writes Slicer's kits here; slicer-core is ours
    sys.modules["slicer.kits"] = kits
    spec = importlib.util.spec_from_file_location(
        "slicer", SLICER_LAYER / "__init__.py", submodule_search_locations=[str(SLICER_LAYER), *core])
    package = importlib.util.module_from_spec(spec)
    sys.modules["slicer"] = package
    spec.loader.exec_module(package)
    package.kits = kits
    import slicer.util  # noqa: F401  (Slicer 5.12.3's, first on the package path)

    import qslicer

    for name in qslicer.__all__:
        setattr(package, name, getattr(qslicer, name))
    qt.QUiLoader.widget_classes.update({n: getattr(qslicer, n) for n in qslicer.__all__ if n.startswith("q")})
    import ctk as ctk_module

    qt.QUiLoader.widget_classes.update({n: getattr(ctk_module, n) for n in dir(ctk_module) if n.startswith("ctk")})
    package.mrmlScene = None
    package.app = None
    _installed = True
    return True


class SlicerSession:
    """One Slicer run: a scene with the module logics, ``slicer.app`` and ``slicer.modules``.
    ``load(path)`` loads a scripted module as Slicer's module factory does."""

    def __init__(self) -> None:
        if not install():
            raise RuntimeError(available())
        import qt
        import qslicer
        import slicer

        from SAMUSALib.mrml import headless_scene

        qt.QSettings.store.clear()
        qt.QTimer.queue.clear()
        self.headless = headless_scene()
        self.scene = self.headless.scene
        self.app = qslicer.qSlicerApplication(self.headless)
        slicer.app = self.app
        slicer.mrmlScene = self.scene
        for name in list(vars(slicer.modules)):
            if not name.startswith("__"):
                delattr(slicer.modules, name)
        for name in list(vars(slicer.moduleNames)):
            if not name.startswith("__"):
                delattr(slicer.moduleNames, name)
        logics = self.headless.logics
        for name, module in (
            ("Segmentations", qslicer.qSlicerAbstractCoreModule("Segmentations", logics["Segmentations"])),
            ("Volumes", qslicer.qSlicerAbstractCoreModule("Volumes", logics["Volumes"])),
            ("Markups", qslicer.qSlicerAbstractCoreModule("Markups", logics["Markups"])),
            ("Sequences", qslicer.qSlicerSequencesModule(logics["Sequences"])),
        ):
            self._register(name, module)

    def _register(self, name: str, module) -> None:
        import slicer

        self.app.moduleManager().add(module)
        setattr(slicer.modules, name.lower(), module)
        setattr(slicer.moduleNames, name, name)

    def load(self, path: Path):
        """Load a scripted module file; returns the qSlicerScriptedLoadableModule stand-in."""
        import qslicer
        import slicer

        module = qslicer.qSlicerScriptedLoadableModule(Path(path), self.app)
        self._register(module.name, module)
        setattr(slicer.modules, module.name + "Instance", module.instance)
        return module

    def process_events(self) -> None:
        self.app.processEvents()

    def close(self) -> None:
        """Unload the scripted modules (their widgets' cleanup) and close the scene."""
        manager = self.app.moduleManager()
        for name, module in list(manager.modules.items()):
            if getattr(module, "isWidgetRepresentationCreated", lambda: False)():
                representation = module.widgetRepresentation()
                if getattr(representation, "isEntered", False):
                    representation.exit()
                manager.moduleAboutToBeUnloaded.emit(name)
        self.scene.Clear(1)
