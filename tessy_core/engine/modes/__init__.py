"""Generation modes as plans: one module of this package per mode (or family of modes).

A new mode is a module here that calls `register(plan)` at import, plus its name in
`tessy_core.enums.Mode` (the config's choices, kept free of engine imports). Every module of this
package is imported when it is, so nothing else lists the modes.
"""

from __future__ import annotations

import importlib
import pkgutil

from tessy_core.engine.modes.base import ModePlan, Phase, register, registered

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def mode_plan(mode: str) -> ModePlan:
    """The plan of a mode (a `Mode` or its name)."""
    name = getattr(mode, "value", mode)
    plans = registered()
    if name not in plans:
        raise KeyError(f"no plan for mode {name!r}; registered: {', '.join(sorted(plans))}")
    return plans[name]


__all__ = ["ModePlan", "Phase", "mode_plan", "register", "registered"]
