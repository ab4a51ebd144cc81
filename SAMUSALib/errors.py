"""Errors a user can act on.

Every failure caused by input (files, prompts, checkpoints, devices) is raised as a
`SamusaError` subclass whose message names the problem and, where there is one, the fix.
The command line prints these messages without a traceback.
"""

from __future__ import annotations


class SamusaError(Exception):
    """Base class: an error caused by what the user gave us, explained in words."""


class InputError(SamusaError, ValueError):
    """An image, volume, cine or file that cannot be used as given."""


class PromptError(SamusaError, ValueError):
    """A prompt (points, box, window) that does not fit the frames it refers to."""


class ModelError(SamusaError):
    """A model that cannot be found, downloaded, verified or loaded."""


class DeviceError(SamusaError):
    """A requested compute device that is not available here."""


class Cancelled(SamusaError):
    """A long run stopped because the user asked; results so far are kept."""
