"""Files that ship inside the package (``anomtok/data/``), found through ``importlib.resources``
so that an installed wheel reads them as a source checkout does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import InputError

__all__ = ["data_file", "DATA_FILES"]

#: Everything ``anomtok/data`` holds that the code reads (``pyproject.toml`` ships ``data/*``).
DATA_FILES = ("packaged_models.json", "prompts_en.txt", "prompts_ja.txt", "sample_en.txt", "sample_ja.txt")


def data_file(name: str) -> Path:
    """Path of a packaged data file; one clear error when the installation lacks it."""
    if name not in DATA_FILES:
        raise ValueError(f"not a packaged data file: {name!r}")
    ref = resources.files("anomtok").joinpath("data", name)
    if not ref.is_file():
        raise InputError(f"the packaged file anomtok/data/{name} is missing from this installation (reinstall anomtok)")
    # anomtok is never imported from a zip, so the resource is a real file on disk.
    return Path(str(ref))
