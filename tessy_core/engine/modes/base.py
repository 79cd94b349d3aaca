"""What a generation mode is: a plan the decoder runs for each attempt at a sample."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tessy_core.engine.records import Role, SampleRequest

if TYPE_CHECKING:
    from tessy_core.config import EngineConfig
    from tessy_core.engine.loop import Attempt


@dataclass(frozen=True)
class Phase:
    """One think-then-answer pass: who writes the thinking (in turn order; the first starts) and
    who then writes the answer after it."""

    writers: tuple[Role, ...]
    answer_role: Role

    @property
    def interleaved(self) -> bool:
        """The writers take turns inside the thinking, each span cut by its boundary predictor."""
        return len(self.writers) > 1


class ModePlan(ABC):
    """How one mode turns a problem into a sample: which passes run, on which prompts, and which
    pass's text the sample keeps. `register(plan)` in a module of this package makes it a mode; the
    decoder looks it up by the config's `engine.mode`."""

    name: str
    # The first pass, on the problem as given: it starts a fresh attempt (a checkpoint's active
    # model) and is checked against the models' contexts before any request.
    opening: Phase
    # Every model that writes thinking, and every model that writes an answer, in this mode.
    thinking_roles: tuple[Role, ...]
    answer_roles: tuple[Role, ...]

    @property
    def interleaved(self) -> bool:
        """Whether this mode's thinking interleaves the models (it then needs both predictors)."""
        return self.opening.interleaved

    @property
    def answer_role(self) -> Role:
        """The model whose answer becomes the sample's."""
        return self.opening.answer_role

    def for_sample(self, request: SampleRequest, engine: EngineConfig) -> ModePlan:
        """The plan that writes this sample: itself, unless the mode draws one per sample."""
        return self

    @abstractmethod
    def attempt(self, run: Attempt) -> AsyncIterator[None]:
        """One attempt at the sample: yields after every model request and ends with
        `run.finish(...)`. Raise `SampleFailed` for a sample this attempt cannot make."""


_REGISTRY: dict[str, ModePlan] = {}


def register(plan: ModePlan) -> ModePlan:
    """Make `plan` the plan of the mode named `plan.name`."""
    if plan.name in _REGISTRY:
        raise ValueError(f"mode {plan.name!r} is registered twice")
    _REGISTRY[plan.name] = plan
    return plan


def registered() -> dict[str, ModePlan]:
    """Every registered plan by mode name (importing `tessy_core.engine.modes` registers them all)."""
    return dict(_REGISTRY)
