"""Slicer geometry and arrays: IJK-to-RAS matrices, parent transforms, numpy <-> vtkImageData,
volumes and cines built from arrays, and a headless scene with the module logics SAMUSA
relies on (scripts and tests run with PyPI slicer-core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from ..errors import InputError
from ..frames import Geometry

# --------------------------------------------------------------------------- geometry


def _matrix(vtk_matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def ijk_to_ras_of(volume_node) -> np.ndarray:
    """4x4 matrix from (i, j, k, 1) voxel indices to the volume's local RAS millimetres."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return _matrix(matrix)


def geometry_from_ijk_to_ras(ijk_to_ras: np.ndarray) -> Geometry:
    """The ITK/LPS `Geometry` of a Slicer IJK-to-RAS matrix (spacing, origin, direction)."""
    to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_ras, dtype=float)
    columns = to_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    return Geometry(tuple(spacing), tuple(to_lps[:3, 3]), tuple((columns / spacing).ravel()))


def _world_to_local(node) -> Callable[[np.ndarray], np.ndarray]:
    """World RAS -> the node's local RAS (through its parent transforms, linear or not)."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return lambda point: np.asarray(point, dtype=float)
    transform = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, parent, transform)
    return lambda point: np.array(transform.TransformPoint(*map(float, point)))


def _same_transform(a, b) -> bool:
    pa, pb = a.GetParentTransformNode(), b.GetParentTransformNode()
    return (pa is None and pb is None) or (pa is not None and pb is not None and pa.GetID() == pb.GetID())


# --------------------------------------------------------------------------- a scene without Slicer


@dataclass
class HeadlessScene:
    """An MRML scene with the module logics SAMUSA relies on, for scripts and tests run
    with PyPI ``slicer-core`` (no Qt, no views). Keep it alive while the scene is used:
    the logics observe the scene (the Sequences logic updates proxy nodes)."""

    scene: object
    application_logic: object
    logics: dict[str, object]


def headless_scene() -> HeadlessScene:
    """A new scene with the Volumes, Segmentations, Markups and Sequences logics registered,
    as the Slicer application sets them up."""
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.GetColorLogic().SetMRMLScene(scene)
    app_logic.GetColorLogic().AddDefaultColorNodes()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    logics = {}
    for name, cls in (
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("Markups", slicer.vtkSlicerMarkupsLogic),
        ("Sequences", slicer.vtkSlicerSequencesLogic),
    ):
        logic = cls()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    return HeadlessScene(scene, app_logic, logics)


# --------------------------------------------------------------------------- arrays <-> volumes


def _image_array(image: vtk.vtkImageData) -> np.ndarray:
    """The voxels of an image as a numpy view, (K, J, I) or (K, J, I, C)."""
    scalars = image.GetPointData().GetScalars() if image is not None else None
    if scalars is None:
        raise InputError("the volume has no voxels (its image data is empty); load or create an image first")
    dims = image.GetDimensions()
    components = scalars.GetNumberOfComponents()
    shape = tuple(reversed(dims)) + ((components,) if components > 1 else ())
    return numpy_support.vtk_to_numpy(scalars).reshape(shape)


def _new_image(array: np.ndarray) -> vtk.vtkImageData:
    array = np.ascontiguousarray(array)
    components = array.shape[3] if array.ndim == 4 else 1
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    flat = array.reshape(-1, components) if components > 1 else array.ravel()
    vtk_array = numpy_support.numpy_to_vtk(flat, deep=True)
    vtk_array.SetNumberOfComponents(components)
    image.GetPointData().SetScalars(vtk_array)
    return image


def _set_ijk_to_ras(node, ijk_to_ras: np.ndarray) -> None:
    node.SetIJKToRASMatrix(_vtk_matrix(np.asarray(ijk_to_ras, dtype=float)))


def _as_ijk_to_ras(geometry: Geometry | np.ndarray | None) -> np.ndarray:
    if geometry is None:
        return np.eye(4)
    if isinstance(geometry, Geometry):
        return geometry.ijk_to_ras()
    return np.asarray(geometry, dtype=float)


def _volume_class(array: np.ndarray) -> str:
    return "vtkMRMLVectorVolumeNode" if array.ndim == 4 else "vtkMRMLScalarVolumeNode"


def volume_from_array(scene, array: np.ndarray, geometry: Geometry | np.ndarray | None = None, name: str = "volume"):
    """A new volume node holding `array` ((K, J, I), or (K, J, I, 3) for RGB) in `geometry`
    (a `Geometry` in LPS or a 4x4 IJK-to-RAS matrix)."""
    array = np.asarray(array)
    if array.ndim not in (3, 4):
        raise InputError(f"a volume needs a (K, J, I) or (K, J, I, 3) array; got shape {array.shape}")
    node = scene.AddNewNodeByClass(_volume_class(array), name)
    node.SetAndObserveImageData(_new_image(array))
    _set_ijk_to_ras(node, _as_ijk_to_ras(geometry))
    node.CreateDefaultDisplayNodes()
    return node


def sequence_from_array(
    scene, frames: np.ndarray, geometry: Geometry | np.ndarray | None = None, name: str = "cine",
    index_name: str = "frame", index_unit: str = "",
):
    """A cine as Slicer loads multi-frame ultrasound: a sequence of single-frame volumes
    ((T, H, W) grayscale or (T, H, W, 3) RGB) and a browser showing it.

    Returns (browser, sequence, proxy volume). `geometry` is each frame's (single-slice)
    geometry. Index values are the frame numbers 0..T-1.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise InputError(f"a cine needs a (T, H, W) or (T, H, W, 3) array; got shape {frames.shape}")
    ijk_to_ras = _as_ijk_to_ras(geometry)
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName(index_name)
    sequence.SetIndexUnit(index_unit)
    sequence.SetIndexType(sequence.NumericIndex)
    for t, frame in enumerate(frames):
        item = slicer.vtkMRMLVectorVolumeNode() if frames.ndim == 4 else slicer.vtkMRMLScalarVolumeNode()
        item.SetAndObserveImageData(_new_image(frame[None]))
        _set_ijk_to_ras(item, ijk_to_ras)
        sequence.SetDataNodeAtValue(item, str(t))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSelectedItemNumber(0)  # the Sequences logic creates the proxy volume
    proxy = browser.GetProxyNode(sequence)
    if proxy is None:
        raise InputError(
            "the sequence browser made no proxy volume: the Sequences module logic is not "
            "registered with this scene"
        )
    return browser, sequence, proxy

