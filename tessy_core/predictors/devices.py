"""Where a learned predictor runs: `auto` is the GPU when the process has one."""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`; any other value is taken as given
    (`cpu`, `cuda`, `cuda:1`, `mps`)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
