"""A pool of zygote workers that verifies programs against their tests, concurrently."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from tessy_core.verify.classify import Status, classify_execution, parse_status
from tessy_core.verify.compare import normalize_json, outputs_match, values_match
from tessy_core.verify.config import Comparison, ExecutionLimits, SandboxConfig
from tessy_core.verify.errors import SandboxError, SandboxUnavailable, ZygoteFailed
from tessy_core.verify.extract import Language, Program, extract_program
from tessy_core.verify.results import TestOutcome, Verdict, VerificationResult
from tessy_core.verify.schema import CallTest, StdioTest, parse_tests
from tessy_core.verify._zygote import WALL_STRETCH
from tessy_core.verify.worker import IsolationReport, UidSlot, ZygoteWorker

TestsInput = Iterable[Mapping[str, Any] | StdioTest | CallTest]
_DRAIN_ALLOWANCE_S = 2.0  # the host may spend this long collecting output after the tree died
_COMPILE_OPEN_FILES = 256
_COMPILE_PROCESSES = 64
_COMPILE_FILE_MB = 256
_MAX_RESULT_CHARS = 1 << 20
COMPILED_PROGRAM = "/prog/prog"  # where the zygote keeps the loaded C++ program (see _zygote)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more chars]"


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class Sandbox:
    """Runs untrusted programs in isolated, forked children of pre-started worker processes.

    Use as a context manager (or call `close()`). `run_tests` is safe to call from many coroutines
    or threads at once: programs queue for the pool, which has one worker per core by default.
    Every isolation layer (see docs/sandbox.md) must hold, or the pool refuses to start.
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
                worker = ZygoteWorker(self.config, slot)
                self._workers.append(worker)
                worker.launch()  # all start at once; then each is waited for
            for worker in self._workers:
                self._check_isolation(worker.wait_ready())
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

    def cgroup_dirs(self) -> list[str]:
        """The workers' cgroup directories (every hierarchy)."""
        return [d for slot in self._slots if slot.cgroup is not None for d in dict.fromkeys(slot.cgroup.dirs.values())]

    @staticmethod
    def _check_isolation(report: IsolationReport) -> None:
        missing = report.missing()
        if missing:
            raise SandboxUnavailable(f"sandbox isolation incomplete here (missing: {', '.join(missing)})")

    # -- public API -----------------------------------------------------------------------------

    async def run_tests(self, program: Program, tests: TestsInput, limits: ExecutionLimits | None = None,
                        source: str | None = None) -> VerificationResult:
        """Judge `program` on `tests`; `source` (the prompt's catalog source) picks its comparison."""
        future = self._executor.submit(self._verify, program, list(tests), limits or ExecutionLimits(),
                                       self.config.comparison(source))
        return await asyncio.wrap_future(future)

    def run_tests_sync(self, program: Program, tests: TestsInput, limits: ExecutionLimits | None = None,
                       source: str | None = None) -> VerificationResult:
        return self._executor.submit(self._verify, program, list(tests), limits or ExecutionLimits(),
                                     self.config.comparison(source)).result()

    # -- one program on one worker --------------------------------------------------------------

    def _verify(self, program: Program, tests: list[Any], limits: ExecutionLimits,
                comparison: Comparison) -> VerificationResult:
        parsed = parse_tests(tests)
        if not parsed:
            raise ValueError("no tests to verify the program against")
        if program.language == "cpp" and self._cxx is None:
            raise SandboxUnavailable(f"C++ program but no {self.config.cxx_compiler!r} on this host")
        started = time.perf_counter()
        worker = self._idle.get()
        try:
            result = self._verify_on(worker, program, parsed, limits, comparison)
        finally:
            self._idle.put(worker)
        result.wall_s = time.perf_counter() - started
        return result

    def _verify_on(self, worker: ZygoteWorker, program: Program, tests: list[StdioTest | CallTest],
                   limits: ExecutionLimits, comparison: Comparison) -> VerificationResult:
        compiled: dict[str, Any] | None = None
        if program.language == "cpp":
            compiled = self._compile(worker, program)
            if not compiled["compiled"]:
                return VerificationResult(verdict=Verdict.COMPILE_ERROR, passed=0, total=len(tests),
                                          message=clip(compiled["message"], self.config.detail_chars))
        outcomes: list[TestOutcome] = []
        run_limits = self._limits_message(
            limits.time_limit_s, limits.memory_limit_mb, file_mb=self.config.max_file_mb,
            open_files=self.config.max_open_files, processes=self.config.max_processes)
        timeout_s = self._reply_timeout_s(run_limits)
        for index, test in enumerate(tests):
            call = {"fn_name": test.fn_name, "args": test.args} if isinstance(test, CallTest) else None
            stdin = test.input.encode() if isinstance(test, StdioTest) else b""
            if program.language == "python":
                request = json.dumps({"source": program.source, "call": call}).encode()
                job = ("python", None, request)
            elif call is not None:
                raise ValueError("call-based tests need a Python program")
            else:
                job = ("exec", [COMPILED_PROGRAM], b"")
            raw = self._execute(worker, *job, run_limits, stdin, timeout_s, reload=program if compiled else None)
            outcome = self._judge(index, test, raw, limits, comparison)
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

    def _compile(self, worker: ZygoteWorker, program: Program) -> dict[str, Any]:
        limits = self._limits_message(
            self.config.compile_time_limit_s, self.config.compile_memory_mb,
            file_mb=_COMPILE_FILE_MB, open_files=_COMPILE_OPEN_FILES, processes=_COMPILE_PROCESSES)
        argv = [self._cxx, *self.config.cxx_flags, "-o", "prog", "main.cpp"]
        timeout_s = self._reply_timeout_s(limits)
        raw = self._execute(worker, "compile", argv, program.source.encode(), limits, b"", timeout_s, reload=None)
        if not raw["ready"]:
            raise SandboxError(f"the sandbox could not prepare the compiler: {raw.get('setup_error')}")
        ok = raw["compiled"] and raw["exit_code"] == 0 and raw["killed_for"] is None and raw["oom_kills"] == 0
        message = _text(raw["stderr"]).strip()
        if raw["killed_for"] is not None or raw["oom_kills"]:
            message = (message + "\n" if message else "") + "the compiler ran out of time or memory"
        return {"compiled": ok, "message": message or "does not compile"}

    def _execute(self, worker: ZygoteWorker, mode: str, argv: list[str] | None, request: bytes,
                 limits: dict[str, Any], stdin: bytes, timeout_s: float, reload: Program | None) -> dict[str, Any]:
        """One execution; a failed zygote is replaced (a C++ program recompiled) and the execution retried once."""
        try:
            return self._facts(worker.execute(mode, argv, limits, request, stdin, timeout_s))
        except ZygoteFailed:
            self._restart(worker)
        except OSError as exc:  # the host's own trouble (e.g. out of descriptors): never the program's verdict
            raise SandboxError(f"the host could not run the execution: {exc}") from exc
        try:
            if reload is not None and not self._compile(worker, reload)["compiled"]:
                raise SandboxError("the program compiled once but not after its worker was restarted")
            return self._facts(worker.execute(mode, argv, limits, request, stdin, timeout_s))
        except ZygoteFailed as exc:
            self._restart(worker)
            raise SandboxError(f"sandbox worker failed twice on the same request: {exc}") from exc

    @staticmethod
    def _facts(reply: dict[str, Any]) -> dict[str, Any]:
        """The zygote's report in the host's terms (wait status decoded, CPU in seconds)."""
        wait_status = reply["wait_status"]
        exited = os.WIFEXITED(wait_status)
        return {**reply, "exit_code": os.WEXITSTATUS(wait_status) if exited else None,
                "signal": None if exited else os.WTERMSIG(wait_status), "cpu_s": reply["cpu_ns"] / 1e9,
                "max_rss_kb": reply["memory_peak_bytes"] // 1024}

    def _restart(self, worker: ZygoteWorker) -> None:
        self._check_isolation(worker.restart())
        with self._restart_lock:
            self.restarts += 1

    # -- messages and judging -------------------------------------------------------------------

    def _reply_timeout_s(self, limits: dict[str, Any]) -> float:
        """How long the host waits for an execution: its wall limit stretched as far as the zygote may
        stretch it (time a starved program waited for a CPU), the drain, and a grace."""
        return limits["wall_s"] * (1 + WALL_STRETCH) + _DRAIN_ALLOWANCE_S + self.config.reply_grace_s

    def _limits_message(self, time_limit_s: float, memory_mb: int, *, file_mb: int, open_files: int,
                        processes: int) -> dict[str, Any]:
        return {"cpu_s": time_limit_s, "wall_s": self.config.wall_limit_s(time_limit_s), "memory_mb": memory_mb,
                "file_mb": file_mb, "open_files": open_files, "processes": processes}

    def _judge(self, index: int, test: StdioTest | CallTest, raw: dict[str, Any], limits: ExecutionLimits,
               comparison: Comparison) -> TestOutcome:
        chars = self.config.detail_chars
        expected = test.output if isinstance(test, StdioTest) else json.dumps(test.expected)
        status = parse_status(raw["status"]) if raw["status_bytes"] <= self.config.max_output_bytes else Status()
        stdout, stderr = _text(raw["stdout"]), _text(raw["stderr"])
        failure = classify_execution({**raw, "stderr": stderr}, status, limits.time_limit_s, limits.memory_limit_mb)
        if failure is not None:
            verdict, message = failure.verdict, failure.message
        elif isinstance(test, StdioTest):
            correct = outputs_match(stdout, test.output, comparison.float_abs_tol, comparison.float_rel_tol)
            verdict, message = (Verdict.ACCEPTED, None) if correct else (Verdict.WRONG_ANSWER, "output differs")
        else:
            verdict, message = self._judge_call(status.result_json, test, comparison)
        return TestOutcome(
            index=index, verdict=verdict, hidden=test.hidden, cpu_s=raw["cpu_s"], wall_s=raw["wall_s"],
            exit_code=raw["exit_code"] if raw["exit_code"] is not None else -raw["signal"], message=message,
            stdout=clip(stdout, chars), stderr=clip(stderr, chars), expected=clip(expected, chars))

    def _judge_call(self, result_json: str | None, test: CallTest, comparison: Comparison) -> tuple[Verdict, str | None]:
        if result_json is None:
            return Verdict.RUNTIME_ERROR, "the program exited without returning a value"
        shown = clip(result_json, self.config.detail_chars)
        if len(result_json) > _MAX_RESULT_CHARS:
            return Verdict.WRONG_ANSWER, f"returned a value of {len(result_json)} characters"
        try:
            returned = json.loads(result_json)
        except (ValueError, RecursionError):
            return Verdict.WRONG_ANSWER, f"returned an unreadable value: {shown}"
        expected = normalize_json(test.expected)
        tolerances = (comparison.float_abs_tol, comparison.float_rel_tol)
        try:
            # APPS/TACO and open-r1 store a scalar result wrapped in a one-element list (see the catalog schema).
            unwrapped = (isinstance(expected, list) and len(expected) == 1
                         and values_match(returned, expected[0], *tolerances))
            correct = unwrapped or values_match(returned, expected, *tolerances)
        except RecursionError:
            correct = False
        if correct:
            return Verdict.ACCEPTED, None
        return Verdict.WRONG_ANSWER, f"returned {shown}"


def no_code_result(tests: TestsInput) -> VerificationResult:
    return VerificationResult(verdict=Verdict.NO_CODE, passed=0, total=len(list(tests)),
                              message="no fenced code block in the final answer")


def verify_answer(sandbox: Sandbox, answer_text: str, tests: TestsInput, limits: ExecutionLimits | None = None,
                  language: Language = "python", source: str | None = None) -> VerificationResult:
    """Extract the program from a model's answer and run it against the tests."""
    tests = list(tests)
    program = extract_program(answer_text, language)
    if program is None:
        return no_code_result(tests)
    return sandbox.run_tests_sync(program, tests, limits, source)


async def verify_answer_async(sandbox: Sandbox, answer_text: str, tests: TestsInput,
                              limits: ExecutionLimits | None = None,
                              language: Language = "python", source: str | None = None) -> VerificationResult:
    """`verify_answer` for coroutines: many answers verify concurrently on the pool."""
    tests = list(tests)
    program = extract_program(answer_text, language)
    if program is None:
        return no_code_result(tests)
    return await sandbox.run_tests(program, tests, limits, source)
