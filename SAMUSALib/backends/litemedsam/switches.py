"""On/off switches of the click rules, read from the environment: each rule can be
turned off to measure what it buys (docs/samusa_lite2.md)."""

from __future__ import annotations

import os

from ...errors import InputError

__all__ = ["switch_setting", "OFF_WORDS", "ON_WORDS"]

OFF_WORDS = ("off", "0", "false", "no")
ON_WORDS = ("on", "1", "true", "yes")


def switch_setting(env: str, default: str, choices: tuple[str, ...] = ("on", "off")) -> str:
    """One of `choices` from the environment variable `env` (unset: `default`), with the
    usual spellings of on and off read as "on" and "off"; anything else is a clear error,
    so a mistyped switch is not silently left at its default."""
    value = (os.environ.get(env) or "").strip().lower() or default
    if value in OFF_WORDS and "off" in choices:
        return "off"
    if value in ON_WORDS and "on" in choices:
        return "on"
    if value not in choices:
        raise InputError(f"{env}={value!r}: expected one of {', '.join(choices)} (default {default})")
    return value
