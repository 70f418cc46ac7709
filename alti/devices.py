"""Where models run: ``--device auto|cpu|cuda``."""

from __future__ import annotations

import torch

from alti.errors import InputError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but is not available; use --device cpu or auto")
    return device
