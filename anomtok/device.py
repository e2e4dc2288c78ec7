"""``--device auto|cpu|cuda[:N]`` resolution, shared by ranking and generation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

__all__ = ["resolve_device"]

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else CPU. Asking for CUDA without one is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise InputError(f"--device {name}: not a valid CUDA device name") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise InputError(f"--device must be auto, cpu or cuda[:N], not {name!r}")
