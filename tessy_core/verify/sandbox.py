"""A pool of zygote workers that verifies programs against their tests, concurrently."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from tessy_core.verify.classify import classify_execution
from tessy_core.verify.compare import normalize_json, outputs_match, values_match
from tessy_core.verify.config import ExecutionLimits, SandboxConfig
from tessy_core.verify.errors import SandboxError, SandboxUnavailable, ZygoteFailed
from tessy_core.verify.extract import Language, Program, extract_program
from tessy_core.verify.results import TestOutcome, Verdict, VerificationResult
from tessy_core.verify.schema import CallTest, StdioTest, parse_tests
from tessy_core.verify.worker import IsolationReport, UidSlot, ZygoteWorker

TestsInput = Iterable[Mapping[str, Any] | StdioTest | CallTest]
_DRAIN_ALLOWANCE_S = 2.0  # the zygote may spend this long collecting output after a kill
_COMPILE_OPEN_FILES = 256
_COMPILE_PROCESSES = 16
_COMPILE_FILE_MB = 256


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more chars]"


class Sandbox:
    """Runs untrusted programs in isolated, forked children of pre-started worker processes.

    Use as a context manager (or call `close()`). `run_tests` is safe to call from many coroutines
    or threads at once: programs queue for the pool, which has one worker per core by default.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._slots: list[UidSlot] = []
        self._workers: list[ZygoteWorker] = []
        self._idle: queue.SimpleQueue[ZygoteWorker] = queue.SimpleQueue()
        self._restart_lock = threading.Lock()
        self.restarts = 0
        self._cxx = shutil.which(self.config.cxx_compiler)
        try:
            for _ in range(self.config.worker_count()):
                slot = UidSlot.claim(self.config)
                self._slots.append(slot)
                worker = ZygoteWorker(self.config, slot.uid)
                self._workers.append(worker)
                self._check_isolation(worker.start())
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise
        self._executor = ThreadPoolExecutor(max_workers=len(self._workers), thread_name_prefix="tessy-sandbox")

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True)
        for worker in self._workers:
            worker.stop()
        for slot in self._slots:
            slot.release()
        self._workers, self._slots = [], []

    @property
    def isolation(self) -> IsolationReport:
        report = self._workers[0].isolation
        assert report is not None
        return report

    def worker_pids(self) -> list[int]:
        return [pid for worker in self._workers if (pid := worker.pid) is not None]

    def program_uids(self) -> list[int]:
        """The unprivileged uids programs of this pool run as (one per worker)."""
        return [slot.uid for slot in self._slots]

    def _check_isolation(self, report: IsolationReport) -> None:
        missing = report.missing()
        if missing and self.config.require_isolation:
            raise SandboxUnavailable(
                f"sandbox isolation incomplete here (missing: {', '.join(missing)}); it needs root or "
                "CAP_SYS_ADMIN+CAP_SETUID. Set require_isolation: false to run with rlimits only (unsafe "
                "for untrusted code).")

    # -- public API -----------------------------------------------------------------------------

    async def run_tests(self, program: Program, tests: TestsInput,
                        limits: ExecutionLimits | None = None) -> VerificationResult:
        future = self._executor.submit(self._verify, program, list(tests), limits or ExecutionLimits())
        return await asyncio.wrap_future(future)

    def run_tests_sync(self, program: Program, tests: TestsInput,
                       limits: ExecutionLimits | None = None) -> VerificationResult:
        return self._executor.submit(self._verify, program, list(tests), limits or ExecutionLimits()).result()

    # -- one program on one worker --------------------------------------------------------------

    def _verify(self, program: Program, tests: list[Any], limits: ExecutionLimits) -> VerificationResult:
        parsed = parse_tests(tests)
        if not parsed:
            raise ValueError("no tests to verify the program against")
        if program.language == "cpp" and self._cxx is None:
            raise SandboxUnavailable(f"C++ program but no {self.config.cxx_compiler!r} on this host")
        started = time.perf_counter()
        worker = self._idle.get()
        try:
            result = self._verify_on(worker, program, parsed, limits)
        finally:
            self._idle.put(worker)
        result.wall_s = time.perf_counter() - started
        return result

    def _verify_on(self, worker: ZygoteWorker, program: Program, tests: list[StdioTest | CallTest],
                   limits: ExecutionLimits) -> VerificationResult:
        load: dict[str, Any] | None = None
        inline: dict[str, Any] | None = None
        if program.language == "python":
            inline = {"language": "python", "source": program.source}
        else:
            load = self._load_message(program)
            loaded = self._request(worker, load, self.config.compile_time_limit_s * 2 + self.config.reply_grace_s, None)
            if not loaded["compiled"]:
                return VerificationResult(verdict=Verdict.COMPILE_ERROR, passed=0, total=len(tests),
                                          message=clip(loaded["compile_output"], self.config.detail_chars))
        outcomes: list[TestOutcome] = []
        timeout_s = self.config.wall_limit_s(limits.time_limit_s) + _DRAIN_ALLOWANCE_S + self.config.reply_grace_s
        for index, test in enumerate(tests):
            message = self._run_message(test, limits)
            if inline is not None:
                message["program"] = inline
            raw = self._request(worker, message, timeout_s, load)
            outcome = self._judge(index, test, raw, limits)
            outcomes.append(outcome)
            if outcome.verdict is not Verdict.ACCEPTED and (
                    self.config.stop_on_first_failure or outcome.verdict is Verdict.COMPILE_ERROR):
                break
        passed = sum(o.verdict is Verdict.ACCEPTED for o in outcomes)
        first_failure = next((o for o in outcomes if o.verdict is not Verdict.ACCEPTED), None)
        return VerificationResult(
            verdict=first_failure.verdict if first_failure else Verdict.ACCEPTED,
            passed=passed, total=len(tests), tests=outcomes,
            message=first_failure.message if first_failure else None)

    def _request(self, worker: ZygoteWorker, message: dict[str, Any], timeout_s: float,
                 reload: dict[str, Any] | None) -> dict[str, Any]:
        """One request; a failed zygote is replaced (program reloaded) and the request retried once."""
        try:
            return worker.request(message, timeout_s)
        except ZygoteFailed:
            self._restart(worker)
        try:
            if reload is not None:
                worker.request(reload, self.config.compile_time_limit_s * 2 + self.config.reply_grace_s)
            return worker.request(message, timeout_s)
        except ZygoteFailed as exc:
            self._restart(worker)
            raise SandboxError(f"sandbox worker failed twice on the same request: {exc}") from exc

    def _restart(self, worker: ZygoteWorker) -> None:
        self._check_isolation(worker.restart())
        with self._restart_lock:
            self.restarts += 1

    # -- messages and judging -------------------------------------------------------------------

    def _load_message(self, program: Program) -> dict[str, Any]:
        limits = self._limits_message(
            self.config.compile_time_limit_s, self.config.compile_memory_mb,
            file_mb=_COMPILE_FILE_MB, open_files=_COMPILE_OPEN_FILES, processes=_COMPILE_PROCESSES)
        return {"op": "load", "language": program.language, "source": program.source,
                "compile": {"compiler": self._cxx, "flags": list(self.config.cxx_flags), "limits": limits}}

    def _limits_message(self, time_limit_s: float, memory_mb: int, *, file_mb: int, open_files: int,
                        processes: int) -> dict[str, Any]:
        return {"cpu_s": time_limit_s, "wall_s": self.config.wall_limit_s(time_limit_s), "memory_mb": memory_mb,
                "file_mb": file_mb, "open_files": open_files, "processes": processes}

    def _run_message(self, test: StdioTest | CallTest, limits: ExecutionLimits) -> dict[str, Any]:
        return {
            "op": "run",
            "stdin": test.input if isinstance(test, StdioTest) else "",
            "call": {"fn_name": test.fn_name, "args": test.args} if isinstance(test, CallTest) else None,
            "limits": self._limits_message(
                limits.time_limit_s, limits.memory_limit_mb, file_mb=self.config.max_file_mb,
                open_files=self.config.max_open_files, processes=self.config.max_processes),
        }

    def _judge(self, index: int, test: StdioTest | CallTest, raw: dict[str, Any],
               limits: ExecutionLimits) -> TestOutcome:
        chars = self.config.detail_chars
        expected = test.output if isinstance(test, StdioTest) else json.dumps(test.expected)
        failure = classify_execution(raw, limits.time_limit_s, limits.memory_limit_mb)
        if failure is not None:
            verdict, message = failure.verdict, failure.message
        elif isinstance(test, StdioTest):
            correct = outputs_match(raw["stdout"], test.output, self.config.float_abs_tol, self.config.float_rel_tol)
            verdict, message = (Verdict.ACCEPTED, None) if correct else (Verdict.WRONG_ANSWER, "output differs")
        else:
            verdict, message = self._judge_call(raw["status"].get("result_json"), test)
        return TestOutcome(
            index=index, verdict=verdict, hidden=test.hidden, cpu_s=raw["cpu_s"], wall_s=raw["wall_s"],
            exit_code=raw["exit_code"], message=message, stdout=clip(raw["stdout"], chars),
            stderr=clip(raw["stderr"], chars), expected=clip(expected, chars))

    def _judge_call(self, result_json: str | None, test: CallTest) -> tuple[Verdict, str | None]:
        if result_json is None:
            return Verdict.RUNTIME_ERROR, "the program exited without returning a value"
        returned = json.loads(result_json)
        expected = normalize_json(test.expected)
        tolerances = (self.config.float_abs_tol, self.config.float_rel_tol)
        # APPS/TACO and open-r1 store a scalar result wrapped in a one-element list (see the catalog schema).
        unwrapped = isinstance(expected, list) and len(expected) == 1 and values_match(returned, expected[0], *tolerances)
        if unwrapped or values_match(returned, expected, *tolerances):
            return Verdict.ACCEPTED, None
        return Verdict.WRONG_ANSWER, f"returned {clip(result_json, self.config.detail_chars)}"


def no_code_result(tests: TestsInput) -> VerificationResult:
    return VerificationResult(verdict=Verdict.NO_CODE, passed=0, total=len(list(tests)),
                              message="no fenced code block in the final answer")


def verify_answer(sandbox: Sandbox, answer_text: str, tests: TestsInput,
                  limits: ExecutionLimits | None = None, language: Language = "python") -> VerificationResult:
    """Extract the program from a model's answer and run it against the tests."""
    tests = list(tests)
    program = extract_program(answer_text, language)
    if program is None:
        return no_code_result(tests)
    return sandbox.run_tests_sync(program, tests, limits)


async def verify_answer_async(sandbox: Sandbox, answer_text: str, tests: TestsInput,
                              limits: ExecutionLimits | None = None,
                              language: Language = "python") -> VerificationResult:
    """`verify_answer` for coroutines: many answers verify concurrently on the pool."""
    tests = list(tests)
    program = extract_program(answer_text, language)
    if program is None:
        return no_code_result(tests)
    return await sandbox.run_tests(program, tests, limits)
