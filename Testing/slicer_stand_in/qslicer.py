"""Stand-ins for the C++ parts of a Slicer application that a scripted module touches: the
qMRML widgets, the qSlicer module and module-widget objects, ``slicer.app`` (application
logic, module manager, event queue, settings) and the main window (status bar, module
selector, keyboard shortcuts). Everything Python in a real Slicer (``slicer.util``,
``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``, ...) is Slicer's own
code, loaded by `slicer_stand_in.install`."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import ctk
import qt
import vtk

# --------------------------------------------------------------------------- qMRML widgets


class qMRMLWidget(qt.QWidget):
    SIGNALS = ("mrmlSceneChanged",)

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene) -> None:
        if scene is not self._scene:
            self._scene = scene
            self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


class qMRMLNodeComboBox(qMRMLWidget):
    """A node selector: ``currentNodeChanged(node)`` when the choice changes, also when the
    chosen node leaves the scene (removed, scene closed)."""

    SIGNALS = ("currentNodeChanged", "currentNodeIDChanged", "nodeAdded", "nodeAboutToBeRemoved")

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self.nodeTypes = []
        self.noneEnabled = False
        self.addEnabled = True
        self.removeEnabled = True
        self.renameEnabled = False
        self.editEnabled = False
        self.showChildNodeTypes = True
        self.hideChildNodeTypes = []
        self.selectNodeUponCreation = True
        self._current = None
        self._tags = []

    def setMRMLScene(self, scene) -> None:
        if self._scene is not None:
            for tag in self._tags:
                self._scene.RemoveObserver(tag)
        self._tags = []
        super().setMRMLScene(scene)
        if scene is not None:
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent):
                self._tags.append(scene.AddObserver(event, self._onSceneChanged))
        self._onSceneChanged()

    def _accepts(self, node) -> bool:
        if node is None or any(node.IsA(t) for t in self.hideChildNodeTypes):
            return False
        return any(node.IsA(t) if self.showChildNodeTypes else node.GetClassName() == t for t in self.nodeTypes)

    def nodes(self) -> list:
        if self._scene is None:
            return []
        collection = self._scene.GetNodes()
        found = [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
        return [n for n in found if self._accepts(n)]

    def _onSceneChanged(self, caller=None, event=None) -> None:
        if "_current" not in self.__dict__:  # being garbage-collected
            return
        if self._current is not None and (self._current.GetScene() is None or self._current.GetScene() is not self._scene):
            self.setCurrentNode(None)
        if self._current is None and not self.noneEnabled:
            candidates = self.nodes()
            if candidates:
                self.setCurrentNode(candidates[0])

    def currentNode(self):
        return self._current

    def currentNodeID(self) -> str:
        return self._current.GetID() if self._current is not None else ""

    def setCurrentNode(self, node) -> None:
        if node is not None and not self._accepts(node):
            raise TypeError(f"{self.objectName} shows {self.nodeTypes}, not {node.GetClassName()}")
        if node is not self._current:
            self._current = node
            self.currentNodeChanged.emit(node)
            self.currentNodeIDChanged.emit(self.currentNodeID())

    def setCurrentNodeID(self, node_id: str) -> None:
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if node_id and self._scene is not None else None)


class qMRMLSegmentSelectorWidget(qMRMLWidget):
    """A segmentation plus one of its segments; ``currentSegmentChanged(QString)``."""

    SIGNALS = ("currentNodeChanged", "currentSegmentChanged", "segmentSelectionChanged")

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self.noneEnabled = False
        self.editEnabled = False
        self._node = None
        self._segment = ""

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        if node is self._node:
            return
        self._node = node
        self.currentNodeChanged.emit(node)
        if not self._segment_exists(self._segment):
            ids = self._ids()
            self.setCurrentSegmentID(ids[0] if ids and not self.noneEnabled else "")

    def _ids(self) -> list[str]:
        if self._node is None:
            return []
        segmentation = self._node.GetSegmentation()
        return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]

    def _segment_exists(self, segment_id: str) -> bool:
        return bool(segment_id) and segment_id in self._ids()

    def currentSegmentID(self) -> str:
        return self._segment if self._segment_exists(self._segment) else ""

    def setCurrentSegmentID(self, segment_id: str) -> None:
        segment_id = segment_id or ""
        if segment_id and not self._segment_exists(segment_id):
            return  # the real widget ignores IDs its segmentation does not have
        if segment_id != self._segment:
            self._segment = segment_id
            self.currentSegmentChanged.emit(segment_id)


class qMRMLSegmentEditorWidget(qMRMLWidget):
    """The Segment Editor's widget (C++): source volume, segmentation, segment and the
    active effect; effects themselves (painting) need a real Slicer."""

    SIGNALS = ("masterVolumeNodeChanged", "sourceVolumeNodeChanged", "segmentationNodeChanged",
               "currentSegmentIDChanged")

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self._parameter = None
        self._segmentation = None
        self._source = None
        self._segment = ""
        self._effect = ""
        self.effectNameOrder = []
        self.unorderedEffectsVisible = True
        self.maximumNumberOfUndoStates = 10
        self.switchToSegmentationsButtonVisible = True
        self.segmentationNodeSelectorVisible = True
        self.sourceVolumeNodeSelectorVisible = True

    def setMRMLSegmentEditorNode(self, node) -> None:
        self._parameter = node

    def mrmlSegmentEditorNode(self):
        return self._parameter

    def setSegmentationNode(self, node) -> None:
        if node is not self._segmentation:
            self._segmentation = node
            self.segmentationNodeChanged.emit(node)

    def segmentationNode(self):
        return self._segmentation

    def setSourceVolumeNode(self, node) -> None:
        if node is not self._source:
            self._source = node
            self.sourceVolumeNodeChanged.emit(node)

    def sourceVolumeNode(self):
        return self._source

    def setCurrentSegmentID(self, segment_id: str) -> None:
        if segment_id != self._segment:
            self._segment = segment_id
            self.currentSegmentIDChanged.emit(segment_id)

    def currentSegmentID(self) -> str:
        return self._segment

    def setActiveEffectByName(self, name: str) -> None:
        self._effect = name

    def activeEffectName(self) -> str:
        return self._effect

    def setActiveEffect(self, effect) -> None:
        self._effect = "" if effect is None else str(effect)

    def installKeyboardShortcuts(self, *args) -> None:
        pass

    def uninstallKeyboardShortcuts(self) -> None:
        pass

    def updateWidgetFromMRML(self) -> None:
        pass


qMRMLSliderWidget = type("qMRMLSliderWidget", (qt.QSlider,), {})
qMRMLSpinBox = type("qMRMLSpinBox", (qt.QSlider,), {})
qMRMLRangeWidget = type("qMRMLRangeWidget", (qt.QSlider,), {})
qSlicerWidget = type("qSlicerWidget", (qMRMLWidget,), {})

# --------------------------------------------------------------------------- modules


class qSlicerAbstractCoreModule(qt.QObject):
    """A C++ module object: metadata, its logic, its widget (created on first request)."""

    def __init__(self, name: str, logic=None) -> None:
        super().__init__(None)
        self.name = name
        self._logic = logic
        self.title = name
        self.categories = []
        self.dependencies = []
        self.contributors = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.icon = None
        self.path = ""
        self.hidden = False
        self._widget = None

    def logic(self):
        return self._logic

    def widgetRepresentation(self):
        return self._widget

    def isWidgetRepresentationCreated(self) -> bool:
        return self._widget is not None


class qSlicerSequencesModule(qSlicerAbstractCoreModule):
    def __init__(self, logic) -> None:
        super().__init__("Sequences", logic)
        self.toolBarActiveBrowser = None

    def setToolBarActiveBrowserNode(self, browser) -> None:
        self.toolBarActiveBrowser = browser


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The C++ widget a scripted module's Python Widget lives in: ``self()`` is the Python
    object; ``enter``/``exit`` call its methods around ``isEntered`` as Slicer does."""

    def __init__(self, module) -> None:
        super().__init__(None)
        self.module = module
        self.isEntered = False
        self._python = None
        self.setLayout(qt.QVBoxLayout())

    def self(self):
        return self._python

    def enter(self) -> None:
        self.isEntered = True
        if hasattr(self._python, "enter"):
            self._python.enter()

    def exit(self) -> None:
        if hasattr(self._python, "exit"):
            self._python.exit()
        self.isEntered = False


class qSlicerScriptedLoadableModule(qSlicerAbstractCoreModule):
    """A scripted module as Slicer loads it: the .py imported as a module of its own name,
    the module class instantiated with this object as ``parent``, the Widget class built and
    set up on the first ``widgetRepresentation()``."""

    def __init__(self, path: Path, app) -> None:
        super().__init__(Path(path).stem)
        self.path = str(path)
        self._app = app
        # ctkFactoryScriptedItem::load: a module's folder goes on sys.path before its file
        # runs (so packages beside it, such as SAMUSA/SAMUSAModule, import)
        folder = str(Path(path).resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)
        spec = importlib.util.spec_from_file_location(self.name, self.path)
        self.python_module = importlib.util.module_from_spec(spec)
        sys.modules[self.name] = self.python_module
        spec.loader.exec_module(self.python_module)
        self.instance = getattr(self.python_module, self.name)(self)

    def widgetRepresentation(self):
        if self._widget is None:
            representation = qSlicerScriptedLoadableModuleWidget(self)
            representation.setMRMLScene(self._app.mrmlScene())
            widget_class = getattr(self.python_module, self.name + "Widget")
            representation._python = widget_class(representation)
            self._widget = representation
            import slicer

            setattr(slicer.modules, self.name + "Widget", representation._python)
            representation._python.setup()
        return self._widget

    createNewWidgetRepresentation = widgetRepresentation


class _ModuleSelector(qt.QObject):
    def __init__(self, app) -> None:
        super().__init__(None)
        self._app = app
        self.selectedModule = ""

    def selectModule(self, name: str) -> None:
        manager = self._app.moduleManager()
        module = manager.module(name)
        if module is None:
            raise RuntimeError(f"no module {name}")
        if self.selectedModule and self.selectedModule != name:
            previous = manager.module(self.selectedModule)
            if previous is not None and previous.widgetRepresentation() is not None:
                representation = previous.widgetRepresentation()
                if getattr(representation, "isEntered", False):
                    representation.exit()
        self.selectedModule = name
        representation = module.widgetRepresentation()
        if representation is not None and hasattr(representation, "enter"):
            representation.enter()


class _StatusBar(qt.QWidget):
    def __init__(self) -> None:
        super().__init__(None)
        self.messages: list[str] = []

    def showMessage(self, text: str, msec: int = 0) -> None:
        self.messages.append(text)

    def currentMessage(self) -> str:
        return self.messages[-1] if self.messages else ""


class qSlicerMainWindow(qt.QMainWindow):
    def __init__(self, app) -> None:
        super().__init__(None)
        self.objectName = "qSlicerMainWindow"
        self._statusBar = _StatusBar()
        self._selector = _ModuleSelector(app)

    def statusBar(self):
        return self._statusBar

    def moduleSelector(self):
        return self._selector

    def shortcuts(self) -> list:
        return [c for c in self.findChildren(qt.QShortcut) if not c.deleted]

    def press(self, key: str) -> int:
        """A key press reaching the main window: activates the enabled shortcuts bound to
        that key sequence; returns how many."""
        hits = [s for s in self.shortcuts() if s.enabled and s.key.toString() == key]
        for shortcut in hits:
            shortcut.activated.emit()
        return len(hits)


class _ModuleManager(qt.QObject):
    SIGNALS = ("moduleAboutToBeUnloaded", "moduleLoaded")

    def __init__(self) -> None:
        super().__init__(None)
        self.modules: dict[str, qSlicerAbstractCoreModule] = {}

    def module(self, name: str):
        return self.modules.get(name)

    def add(self, module) -> None:
        self.modules[module.name] = module

    def factoryManager(self):
        return types.SimpleNamespace(loadedModuleNames=lambda: list(self.modules))


class qSlicerApplication(qt.QObject):
    """``slicer.app`` of a session: the scene, the application logic, modules, the main
    window, an event queue (``processEvents`` runs what ``QTimer.singleShot`` queued)."""

    SIGNALS = ("startupCompleted",)

    def __init__(self, headless) -> None:
        super().__init__(None)
        self.headless = headless
        self.applicationName = "Slicer"
        self.applicationVersion = "5.12.3"
        self.majorVersion, self.minorVersion, self.patchVersion = 5, 12, 3
        self.revision = "34183"
        self.documentationBaseUrl = "https://slicer.readthedocs.io/en/latest"
        self.overrideCursors = 0
        self.restarted = False
        self._testing = True
        self._manager = _ModuleManager()
        self._mainWindow = qSlicerMainWindow(self)

    def mrmlScene(self):
        return self.headless.scene

    def applicationLogic(self):
        return self.headless.application_logic

    def moduleManager(self):
        return self._manager

    def mainWindow(self):
        return self._mainWindow

    def topLevelWidgets(self) -> list:
        return [self._mainWindow]

    def layoutManager(self):
        return None  # no views headless

    def testingEnabled(self) -> bool:
        return self._testing

    def setTestingEnabled(self, value: bool) -> None:
        self._testing = bool(value)

    def processEvents(self, *args) -> None:
        qt.run_queued_calls()

    def translate(self, context: str, text: str) -> str:
        return text

    def setOverrideCursor(self, cursor) -> None:
        self.overrideCursors += 1

    def restoreOverrideCursor(self) -> None:
        self.overrideCursors -= 1

    def settings(self):
        return qt.QSettings()

    userSettings = settings

    def restart(self) -> None:
        self.restarted = True

    def moduleDocumentationUrl(self, name: str) -> str:
        return f"{self.documentationBaseUrl}/user_guide/modules/{name.lower()}.html"

    def pythonConsole(self):
        return None

    def commandOptions(self):
        return types.SimpleNamespace(noMainWindow=False)

    def keyboardModifiers(self):
        return qt.Qt.NoModifier


__all__ = [
    "qMRMLWidget", "qMRMLNodeComboBox", "qMRMLSegmentSelectorWidget", "qMRMLSegmentEditorWidget",
    "qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget", "qSlicerWidget",
    "qSlicerAbstractCoreModule", "qSlicerScriptedLoadableModule", "qSlicerScriptedLoadableModuleWidget",
    "qSlicerApplication", "qSlicerMainWindow", "qSlicerSequencesModule",
]
