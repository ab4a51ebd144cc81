"""A stand-in for PythonQt's ``qt`` module: just enough Qt, in Python, for Slicer's own
Python layer (parameterNodeWrapper, ScriptedLoadableModule, util) and the SAMUSA module
to run headless. Widgets hold their Qt properties as attributes (as PythonQt exposes
them), signals call their slots synchronously, ``QTimer.singleShot`` queues work that
``slicer.app.processEvents()`` runs, and ``QUiLoader`` builds widgets from a .ui file.

Nothing here draws or handles input events: what a real Qt adds (painting, focus, key
routing) is what only a real Slicer can check."""

from __future__ import annotations

import inspect
import xml.etree.ElementTree as ET
from pathlib import Path

# --------------------------------------------------------------------------- signals


def _arity(slot) -> int | None:
    """How many positional arguments a slot takes (None: any number)."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for p in parameters:
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            count += 1
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class Signal:
    """A bound signal: ``connect``/``disconnect`` slots, ``emit`` calls them in order with
    as many arguments as each takes (PythonQt drops the extra ones too)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._slots: list = []

    def connect(self, slot, _count: int | None = None) -> None:
        self._slots.append((slot, _count))

    def disconnect(self, slot=None) -> None:
        if slot is None:
            self._slots.clear()
            return
        for index, (known, _count) in enumerate(self._slots):
            if known == slot:
                del self._slots[index]
                return
        raise RuntimeError(f"disconnect: {slot!r} was not connected to {self.name}")

    def emit(self, *args) -> None:
        for slot, declared in list(self._slots):
            count = _arity(slot)
            if declared is not None:
                count = declared if count is None else min(count, declared)
            slot(*(args if count is None else args[:count]))

    def __len__(self) -> int:
        return len(self._slots)


class QObject:
    """Objects with a parent, children, an object name, dynamic properties and signals
    (declared per class in ``SIGNALS``)."""

    SIGNALS: tuple[str, ...] = ("destroyed",)

    def __init__(self, parent=None, *args, **kwargs) -> None:
        self.__dict__["_signals"] = {}
        self._properties: dict = {}
        self._children: list = []
        self._parent = None
        self.objectName = ""
        self.deleted = False
        if parent is not None and isinstance(parent, QObject):
            self.setParent(parent)

    def __getattr__(self, name):
        for cls in type(self).__mro__:
            if name in getattr(cls, "SIGNALS", ()):
                signals = self.__dict__["_signals"]
                if name not in signals:
                    signals[name] = Signal(name)
                return signals[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # PythonQt's old-style connections: widget.connect("clicked()", slot)
    def connect(self, signature: str, slot) -> bool:
        """A slot connected to "clicked()" gets no arguments, to "valueChanged(int)" one."""
        name, _, rest = signature.partition("(")
        arguments = rest.rstrip(")").strip()
        getattr(self, name).connect(slot, len(arguments.split(",")) if arguments else 0)
        return True

    def disconnect(self, signature: str, slot=None) -> bool:
        getattr(self, signature.split("(")[0]).disconnect(slot)
        return True

    @property
    def name(self) -> str:
        return self.objectName

    @name.setter
    def name(self, value: str) -> None:
        self.objectName = value

    def setObjectName(self, name: str) -> None:
        self.objectName = name

    def property(self, name: str):
        if name in self._properties:
            return self._properties[name]
        return None

    def setProperty(self, name: str, value) -> None:
        self._properties[name] = value

    def parent(self):
        return self._parent

    def setParent(self, parent) -> None:
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        self._parent = parent
        if parent is not None:
            parent._children.append(self)

    def children(self) -> list:
        return list(self._children)

    def findChildren(self, cls=None) -> list:
        found = []
        for child in self._children:
            if cls is None or isinstance(child, cls):
                found.append(child)
            found += child.findChildren(cls)
        return found

    def deleteLater(self) -> None:
        self.deleted = True
        self.setParent(None)

    def inherits(self, class_name: str) -> bool:
        return any(c.__name__ == class_name for c in type(self).__mro__)

    def className(self) -> str:
        return type(self).__name__


# --------------------------------------------------------------------------- widgets


class QWidget(QObject):
    SIGNALS = ("customContextMenuRequested",)

    def __init__(self, parent=None, *args, **kwargs) -> None:
        super().__init__(parent)
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.statusTip = ""
        self._layout = None

    def isWidgetType(self) -> bool:
        return True

    def setEnabled(self, value: bool) -> None:
        self.enabled = bool(value)

    def isEnabled(self) -> bool:
        return self.enabled

    def setVisible(self, value: bool) -> None:
        self.visible = bool(value)

    def isVisible(self) -> bool:
        return self.visible

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def close(self) -> bool:
        self.visible = False
        return True

    def setToolTip(self, text: str) -> None:
        self.toolTip = text

    def setLayout(self, layout) -> None:
        self._layout = layout
        layout._owner = self

    def layout(self):
        return self._layout

    def setSizePolicy(self, *args) -> None:
        pass

    def setFocus(self) -> None:
        pass


class QLayout(QObject):
    def __init__(self, parent=None, *args) -> None:
        super().__init__(None)
        self._owner = None
        self.items: list = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget, *args) -> None:
        self.items.append(widget)
        if self._owner is not None and isinstance(widget, QObject):
            widget.setParent(self._owner)

    def addLayout(self, layout, *args) -> None:
        self.items.append(layout)

    def addRow(self, *items) -> None:
        for item in items:
            if isinstance(item, QWidget):
                self.addWidget(item)
            elif isinstance(item, QLayout):
                self.addLayout(item)

    def addStretch(self, *args) -> None:
        pass

    def addItem(self, *args) -> None:
        pass


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    pass


class QGridLayout(QLayout):
    pass


class QLabel(QWidget):
    def __init__(self, text="", parent=None, *args) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self.text = text
        self.wordWrap = False

    def setText(self, text: str) -> None:
        self.text = text


class QAbstractButton(QWidget):
    SIGNALS = ("clicked", "toggled", "pressed", "released")

    def __init__(self, text="", parent=None, *args) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self.text = text
        self.checkable = False
        self._checked = False

    @property
    def checked(self) -> bool:
        return self._checked

    @checked.setter
    def checked(self, value: bool) -> None:
        value = bool(value)
        if value != self._checked:
            self._checked = value
            self.toggled.emit(value)

    def setChecked(self, value: bool) -> None:
        self.checked = value

    def isChecked(self) -> bool:
        return self.checked

    def setText(self, text: str) -> None:
        self.text = text

    def click(self) -> None:
        """What a user's click does: nothing on a disabled button; toggles a checkable one."""
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self.checked
        self.clicked.emit(self.checked)


class QPushButton(QAbstractButton):
    pass


class QToolButton(QAbstractButton):
    def setMenu(self, menu) -> None:
        self._menu = menu

    def setDefaultAction(self, action) -> None:
        self._defaultAction = action

    def defaultAction(self):
        return getattr(self, "_defaultAction", None)


class QCheckBox(QAbstractButton):
    SIGNALS = ("stateChanged",)

    @QAbstractButton.checked.setter
    def checked(self, value: bool) -> None:
        value = bool(value)
        if value != self._checked:
            self._checked = value
            self.toggled.emit(value)
            self.stateChanged.emit(2 if value else 0)

    def __init__(self, text="", parent=None, *args) -> None:
        super().__init__(text, parent)
        self.checkable = True


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged", "currentTextChanged", "activated")

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self._items: list[str] = []
        self._index = -1

    def addItem(self, text, *args) -> None:
        self._items.append(str(text))
        if self._index < 0:
            self.currentIndex = 0

    def addItems(self, texts) -> None:
        for text in texts:
            self.addItem(text)

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

    @property
    def count(self) -> int:
        return len(self._items)

    def itemText(self, index: int) -> str:
        return self._items[index]

    @property
    def currentIndex(self) -> int:
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        index = int(index)
        if not -1 <= index < len(self._items):
            index = -1
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    @property
    def currentText(self) -> str:
        return self._items[self._index] if self._index >= 0 else ""

    def findText(self, text: str) -> int:
        return self._items.index(text) if text in self._items else -1


class QProgressBar(QWidget):
    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self.value = 0
        self.minimum = 0
        self.maximum = 100
        self.format = "%p%"
        self.textVisible = True


class QLineEdit(QWidget):
    SIGNALS = ("textChanged", "editingFinished")

    def __init__(self, text="", parent=None, *args) -> None:
        super().__init__(parent)
        self.text = text


class QTextEdit(QWidget):
    SIGNALS = ("textChanged",)


class QSlider(QWidget):
    SIGNALS = ("valueChanged",)


class QSpinBox(QSlider):
    pass


class QDoubleSpinBox(QSlider):
    pass


class QFrame(QWidget):
    pass


class QGroupBox(QWidget):
    pass


class QDialog(QWidget):
    def exec_(self) -> int:
        return 0

    exec = exec_


class QMainWindow(QWidget):
    pass


class QProgressDialog(QDialog):
    SIGNALS = ("canceled",)

    def __init__(self, parent=None, *args) -> None:
        super().__init__(parent)
        self.labelText = ""
        self.value = 0
        self.maximum = 100
        self.minimumDuration = 0
        self.windowTitle = ""
        self.wasCanceled = False


class QMessageBox(QDialog):
    NoButton, Ok, Cancel, Yes, No, Retry, Close = 0, 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4


class QMenu(QWidget):
    def __init__(self, *args) -> None:
        super().__init__(args[0] if args and isinstance(args[0], QObject) else None)

    def addAction(self, action) -> None:
        self._children.append(action)


class QAction(QObject):
    SIGNALS = ("triggered", "toggled")

    def __init__(self, text="", parent=None, *args) -> None:
        super().__init__(parent if isinstance(parent, QObject) else None)
        self.text = text

    def setStatusTip(self, text: str) -> None:
        self.statusTip = text


class QSizePolicy:
    Fixed, Minimum, Maximum, Preferred, Expanding, MinimumExpanding, Ignored = range(7)

    def __init__(self, *args) -> None:
        pass


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = path


class QColor:
    def __init__(self, *args) -> None:
        self.args = args


class QUrl:
    TolerantMode = 0

    def __init__(self, url: str = "", *args) -> None:
        self.url = url


class QDesktopServices:
    @staticmethod
    def openUrl(url) -> bool:
        return False


class QKeySequence:
    def __init__(self, key: str) -> None:
        self.key = key

    def toString(self) -> str:
        return self.key


class QShortcut(QObject):
    """A keyboard shortcut on a window; the stand-in main window's ``press(key)`` activates it."""

    SIGNALS = ("activated", "activatedAmbiguously")

    def __init__(self, key=None, parent=None, *args) -> None:
        super().__init__(parent)
        self.key = key if isinstance(key, QKeySequence) else QKeySequence(str(key or ""))
        self.enabled = True

    def setKey(self, key) -> None:
        self.key = key


class Qt:
    WaitCursor, ArrowCursor = 3, 0
    NoModifier, ShiftModifier, ControlModifier = 0, 0x02000000, 0x04000000
    Horizontal, Vertical = 1, 2
    AlignLeft, AlignRight, AlignCenter = 1, 2, 0x84


class QTimer(QObject):
    """``singleShot`` queues the call; the stand-in application runs the queue in
    ``processEvents()`` (a real event loop runs it after the current slot returns)."""

    SIGNALS = ("timeout",)
    queue: list = []

    @staticmethod
    def singleShot(msec, callback) -> None:
        QTimer.queue.append(callback)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.singleShot_ = False
        self.active = False

    def start(self, *args) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False


def run_queued_calls(limit: int = 1000) -> int:
    """Run the calls ``QTimer.singleShot`` queued, including those they queue; returns how many ran."""
    ran = 0
    while QTimer.queue and ran < limit:
        QTimer.queue.pop(0)()
        ran += 1
    return ran


class QSettings:
    """Application settings, one dictionary per process (tests reset it)."""

    store: dict = {}

    def __init__(self, *args) -> None:
        pass

    def value(self, key, default=None):
        return QSettings.store.get(key, default)

    def setValue(self, key, value) -> None:
        QSettings.store[key] = value

    def contains(self, key) -> bool:
        return key in QSettings.store

    def remove(self, key) -> None:
        QSettings.store.pop(key, None)


class QFile:
    ReadOnly = 1

    def __init__(self, path) -> None:
        self.path = str(path)

    def exists(self) -> bool:
        return Path(self.path).is_file()

    def open(self, mode) -> bool:
        return self.exists()

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- .ui files


def _value(element):
    """The Python value of a .ui <property> element's child."""
    if element is None:
        return None
    tag = element.tag
    if tag == "string":
        return element.text or ""
    if tag == "bool":
        return (element.text or "").strip() == "true"
    if tag in ("number", "enum"):
        text = (element.text or "").strip()
        try:
            return int(text)
        except ValueError:
            return text
    if tag == "double":
        return float(element.text)
    if tag == "stringlist":
        return [s.text or "" for s in element.findall("string")]
    return None


class QUiLoader:
    """Builds the widget tree of a .ui file with the stand-in classes (Qt, CTK and qMRML,
    looked up in ``widget_classes``), sets their properties, and makes the file's
    signal/slot connections."""

    widget_classes: dict = {}

    def load(self, qfile, parent=None):
        root = ET.parse(qfile.path).getroot()
        widgets: dict[str, QObject] = {}
        top = self._widget(root.find("widget"), parent, widgets)
        for connection in root.iter("connection"):
            sender = widgets[connection.findtext("sender")]
            receiver = widgets[connection.findtext("receiver")]
            signal = connection.findtext("signal").split("(")[0]
            slot = connection.findtext("slot").split("(")[0]
            getattr(sender, signal).connect(getattr(receiver, slot))
        return top

    def _class(self, name: str):
        cls = self.widget_classes.get(name) or globals().get(name)
        if cls is None:
            raise RuntimeError(f"the Qt stand-in has no widget class {name}")
        return cls

    def _widget(self, element, parent, widgets):
        widget = self._class(element.get("class"))(parent)
        widget.objectName = element.get("name") or ""
        widgets[widget.objectName] = widget
        for prop in element.findall("property"):
            name, value = prop.get("name"), _value(next(iter(prop), None))
            if prop.get("stdset") == "0":
                widget.setProperty(name, value)
            elif value is not None and name not in ("geometry", "sizePolicy"):
                setattr(widget, name, value)
        layout = element.find("layout")
        if layout is not None:
            self._layout(layout, widget, widgets)
        for child in element.findall("widget"):
            self._widget(child, widget, widgets)
        return widget

    def _layout(self, element, owner, widgets):
        for item in element.findall("item"):
            child = item.find("widget")
            if child is not None:
                self._widget(child, owner, widgets)
            inner = item.find("layout")
            if inner is not None:
                self._layout(inner, owner, widgets)


def __getattr__(name: str):
    # Any other Qt class the code names but does not use: a plain QObject subclass.
    if name.startswith("Q"):
        cls = type(name, (QWidget,), {})
        globals()[name] = cls
        return cls
    raise AttributeError(name)
