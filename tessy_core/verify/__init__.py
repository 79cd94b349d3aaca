"""Code-execution verification: extract the program from an answer and judge it on the prompt's tests.

    with Sandbox() as sandbox:
        result = verify_answer(sandbox, answer_text, prompt["tests"], ExecutionLimits.from_prompt(prompt))
        row.update(result.to_record())
"""

from tessy_core.verify.config import Comparison, ExecutionLimits, SandboxConfig
from tessy_core.verify.errors import SandboxError, SandboxUnavailable
from tessy_core.verify.extract import Program, extract_program
from tessy_core.verify.results import TestOutcome, Verdict, VerificationResult
from tessy_core.verify.sandbox import Sandbox, verify_answer, verify_answer_async
from tessy_core.verify.schema import CallTest, StdioTest, parse_tests
from tessy_core.verify.worker import IsolationReport

__all__ = [
    "CallTest",
    "Comparison",
    "ExecutionLimits",
    "IsolationReport",
    "Program",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailable",
    "StdioTest",
    "TestOutcome",
    "Verdict",
    "VerificationResult",
    "extract_program",
    "parse_tests",
    "verify_answer",
    "verify_answer_async",
]
