"""The cooperative decoding engine."""

from tessy_core.engine.factory import open_decoder
from tessy_core.engine.loop import CooperativeDecoder, Participant, SampleRun
from tessy_core.engine.records import Role, SampleCheckpoint, SampleRequest, SampleResult, Span, SpanEnd
from tessy_core.engine.runner import RunSummary, run_samples, run_samples_lockstep

__all__ = [
    "CooperativeDecoder",
    "Participant",
    "Role",
    "RunSummary",
    "SampleCheckpoint",
    "SampleRequest",
    "SampleResult",
    "SampleRun",
    "Span",
    "SpanEnd",
    "open_decoder",
    "run_samples",
    "run_samples_lockstep",
]
