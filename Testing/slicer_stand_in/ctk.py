"""A stand-in for CTK's Python module (C++ widgets in a real Slicer): the classes Slicer's
Python layer and SAMUSA's .ui name, built on the Qt stand-in."""

from __future__ import annotations

import qt


class ctkCollapsibleButton(qt.QAbstractButton):
    def __init__(self, parent=None, *args) -> None:
        super().__init__("", parent)
        self.collapsed = False


class ctkCheckBox(qt.QCheckBox):
    pass


class ctkComboBox(qt.QComboBox):
    pass


class ctkCheckablePushButton(qt.QPushButton):
    pass


class ctkSliderWidget(qt.QSlider):
    pass


class ctkDoubleSlider(qt.QSlider):
    pass


class ctkDoubleSpinBox(qt.QSlider):
    pass


class ctkRangeWidget(qt.QSlider):
    pass


class ctkDoubleRangeSlider(qt.QSlider):
    pass


class ctkPathLineEdit(qt.QWidget):
    pass


class ctkDirectoryButton(qt.QWidget):
    pass


class ctkColorPickerButton(qt.QWidget):
    pass


class ctkMessageBox(qt.QMessageBox):
    pass


def __getattr__(name: str):
    if name.startswith("ctk"):
        cls = type(name, (qt.QWidget,), {})
        globals()[name] = cls
        return cls
    raise AttributeError(name)
