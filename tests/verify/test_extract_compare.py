"""Program extraction from answers, tolerant output comparison, test parsing, verdict classification."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tessy_core.verify import CallTest, Comparison, SandboxConfig, StdioTest, Verdict, extract_program, parse_tests
from tessy_core.verify.classify import Status, classify_execution, parse_status
from tessy_core.verify.compare import outputs_match, values_match
from tessy_core.verify.errors import SandboxError


class TestExtraction:
    def test_last_fenced_block_of_the_language_wins(self):
        answer = "First try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\nDone."
        assert extract_program(answer).source == "print(2)\n"

    def test_blocks_of_other_languages_are_skipped(self):
        answer = "```python\nprint('py')\n```\nExample run:\n```text\n$ python main.py\n```\n```bash\necho hi\n```"
        assert extract_program(answer).source == "print('py')\n"

    @pytest.mark.parametrize("tag", ["python", "py", "Python3", "PY3"])
    def test_python_tags(self, tag):
        assert extract_program(f"```{tag}\nx = 1\n```").source == "x = 1\n"

    def test_untagged_block_counts_only_if_it_parses_as_python(self):
        assert extract_program("```\nprint(3)\n```").source == "print(3)\n"
        assert extract_program("```\n5 7\n12 oops ]\n```") is None

    def test_thinking_is_not_the_answer(self):
        answer = "<think>\n```python\nprint('draft')\n```\n</think>\nNo code here, sorry."
        assert extract_program(answer) is None
        answer = "<think>\n```python\nprint('draft')\n```\n</think>\n```python\nprint('final')\n```"
        assert extract_program(answer).source == "print('final')\n"

    def test_no_code(self):
        assert extract_program("The answer is 42.") is None
        assert extract_program("```python\n   \n```") is None

    def test_truncated_fence_still_counts(self):
        assert extract_program("Here:\n```python\nprint(int(input()) + 1)\n").source == "print(int(input()) + 1)\n"

    def test_longer_fences_and_tildes(self):
        answer = "````python\nprint('```')\n````\n~~~py\nprint('tilde')\n~~~\n"
        assert extract_program(answer).source == "print('tilde')\n"
        assert extract_program("````python\ns = '```'\nprint(s)\n````").source == "s = '```'\nprint(s)\n"

    def test_cpp(self):
        answer = "```python\nprint(1)\n```\n```cpp\nint main(){}\n```\n```c++\nint main(){return 0;}\n```"
        assert extract_program(answer, "cpp").source == "int main(){return 0;}\n"
        assert extract_program(answer, "cpp").language == "cpp"
        assert extract_program("```\nint main(){}\n```", "cpp") is None

    def test_unknown_language_is_a_clear_error(self):
        with pytest.raises(ValueError, match="unsupported language"):
            extract_program("```rust\nfn main(){}\n```", "rust")  # type: ignore[arg-type]


class TestComparison:
    def test_whitespace_is_not_significant(self):
        assert outputs_match("1 2\n3\n", "1  2 3")
        assert outputs_match("  yes\r\n\n\n", "yes")
        assert not outputs_match("1 2", "1 2 3")
        assert not outputs_match("12", "1 2")

    def test_floats_within_tolerance_only_where_the_expected_token_is_a_float(self):
        assert outputs_match("3.1415927", "3.14159265")
        assert outputs_match("1000000.5", "1000000.5000004")
        assert outputs_match("3", "3.0") and outputs_match("2.5e0", "2.5")
        assert not outputs_match("3.15", "3.14159265")
        assert not outputs_match("2.5", "2.6", abs_tol=0.01, rel_tol=0.0)
        assert outputs_match("2.5", "2.6", abs_tol=0.2, rel_tol=0.0)
        assert not outputs_match("nan", "0.5") and not outputs_match("1e999", "1.0")

    def test_integers_compare_exactly_and_never_through_a_float(self):
        assert not outputs_match(str(10**18 + 1), str(10**18))
        assert outputs_match("+7", "7") and outputs_match("007", "7") and outputs_match("-0", "0")
        assert not outputs_match("1000001.0", "1000000")  # within 1e-6 relative: the old hole
        assert not outputs_match("1000000.0", "1000000") and not outputs_match("1e6", "1000000")
        assert not outputs_match("1e-9", "0") and not outputs_match("0.0", "0")
        assert not outputs_match("7.", "7") and not outputs_match("0x7", "7")

    def test_integers_of_any_length(self):
        huge = "9" * 20_000  # past int()'s 4300-digit limit: compared without converting
        assert outputs_match(huge, huge) and outputs_match("+" + huge, "0" + huge)
        assert not outputs_match(huge + "8", huge + "9")

    def test_words_compare_exactly(self):
        assert not outputs_match("Yes", "YES")
        assert outputs_match("nan", "nan ")  # identical tokens match even when not finite numbers
        assert not outputs_match("inf", "1e308")

    def test_values_by_type_and_value(self):
        assert values_match([1, 2.0000001, {"a": [True]}], [1, 2.0, {"a": [True]}])
        assert not values_match(True, 1)
        assert not values_match(1, True)
        assert not values_match([1, 2], [1, 2, 3])
        assert not values_match({"a": 1}, {"b": 1})
        assert values_match(0.1 + 0.2, 0.3) and values_match(3, 3.0)
        assert not values_match(10**18 + 1, 10**18)
        assert values_match("x", "x") and not values_match("x", "y")
        assert values_match(None, None) and not values_match(None, 0)

    def test_a_float_never_passes_for_an_int(self):
        assert not values_match(5.0, 5)
        assert not values_match(1_000_999.0, 1_000_000)  # 999 away, inside the old tolerance
        assert not values_match([1.0], [1]) and not values_match("5", 5)
        assert not values_match(10**400, 1.0)  # too large for a float: no OverflowError

    def test_per_source_tolerance(self):
        config = SandboxConfig(comparison_by_source={"cf": Comparison(float_abs_tol=1e-2, float_rel_tol=0)})
        assert config.comparison("cf").float_abs_tol == 1e-2
        assert config.comparison("apps") == config.comparison() == Comparison()


class TestTestParsing:
    def test_plain_input_output_pairs_are_stdio(self):
        tests = parse_tests([{"input": "1\n", "output": "2\n"}])
        assert tests == [StdioTest(input="1\n", output="2\n")]

    def test_catalog_schema(self):
        tests = parse_tests([
            {"kind": "stdio", "input": "", "output": "x", "hidden": True},
            {"kind": "call", "fn_name": "add", "args": [1, 2], "expected": 3},
        ])
        assert tests[0].hidden and isinstance(tests[1], CallTest)

    @pytest.mark.parametrize("bad", [
        [{"input": "1"}],
        [{"kind": "call", "fn_name": "", "args": [], "expected": 1}],
        [{"kind": "shell", "input": "", "output": ""}],
        [{"input": "", "output": "", "extra": 1}],
    ])
    def test_bad_tests_are_rejected(self, bad):
        with pytest.raises(ValidationError):
            parse_tests(bad)


def _raw(**overrides):
    raw = {"ready": True, "setup_error": None, "exit_code": 0, "signal": None, "wall_s": 0.01, "cpu_s": 0.01,
           "killed_for": None, "oom_kills": 0, "pids_max": 0, "output_limit": False, "stdout_bytes": 0,
           "stderr": ""}
    return {**raw, **overrides}


def _status(**fields):
    return parse_status(json.dumps({"pid": 1, **fields}).encode())


class TestClassification:
    def test_clean_exit_leaves_the_verdict_to_the_output(self):
        assert classify_execution(_raw(), Status(), 1.0, 256) is None

    def test_wall_timeout(self):
        failure = classify_execution(_raw(killed_for="wall", signal=9, exit_code=None), Status(), 1.0, 256)
        assert failure.verdict is Verdict.TIME_LIMIT and failure.message.startswith("wall time")

    def test_tree_cpu_decides_before_anything_the_program_wrote(self):
        # Killed for CPU while its stderr shows a MemoryError: time_limit, every time.
        raw = _raw(killed_for="cpu", signal=9, exit_code=None, cpu_s=1.0, stderr="MemoryError\n")
        assert classify_execution(raw, _status(phase="error", error="MemoryError"), 1.0, 256).verdict is Verdict.TIME_LIMIT
        assert classify_execution(_raw(cpu_s=1.2), Status(), 1.0, 256).verdict is Verdict.TIME_LIMIT
        assert classify_execution(_raw(cpu_s=1.2, oom_kills=1, signal=9), Status(), 1.0, 256).verdict is Verdict.TIME_LIMIT

    def test_memory_only_from_the_cgroup(self):
        assert classify_execution(_raw(oom_kills=1, signal=9, exit_code=None), Status(), 1.0, 256).verdict is Verdict.MEMORY_LIMIT
        # The program saying so is not enough (it cannot choose its failure either).
        said = classify_execution(_raw(exit_code=1, stderr="std::bad_alloc\n"), _status(phase="error", error="MemoryError"), 1, 256)
        assert said.verdict is Verdict.RUNTIME_ERROR and "MemoryError" in said.message

    def test_runtime_errors(self):
        failure = classify_execution(_raw(exit_code=1), _status(phase="error", error="ZeroDivisionError"), 1, 256)
        assert failure.verdict is Verdict.RUNTIME_ERROR and "ZeroDivisionError" in failure.message
        assert classify_execution(_raw(exit_code=None, signal=11), Status(), 1.0, 256).message == "killed by SIGSEGV"
        assert classify_execution(_raw(exit_code=3), Status(), 1.0, 256).message == "exit code 3"

    def test_compile_and_output_limit(self):
        compile_error = _raw(exit_code=1, stderr="  File x\nSyntaxError: bad\n")
        assert classify_execution(compile_error, _status(phase="compile"), 1, 256).verdict is Verdict.COMPILE_ERROR
        assert classify_execution(_raw(), _status(phase="compile"), 1, 256) is None  # exit 0: the output decides
        flood = _raw(output_limit=True, killed_for="host", signal=9, exit_code=None, stdout_bytes=9 << 20)
        assert classify_execution(flood, Status(), 1, 256).verdict is Verdict.WRONG_ANSWER

    def test_sandbox_setup_failure_comes_only_from_the_setup_report(self):
        with pytest.raises(SandboxError, match="boom"):
            classify_execution(_raw(ready=False, setup_error="OSError: boom", exit_code=120), Status(), 1, 256)
        # A status line claiming a setup failure is the program's: no sandbox error.
        forged = _status(phase="setup", error="boom")
        assert classify_execution(_raw(exit_code=120), forged, 1, 256).verdict is Verdict.RUNTIME_ERROR


class TestStatusParsing:
    @pytest.mark.parametrize("raw", [
        b"", b"\xff\xfe garbage", b"[" * 100_000, b"{" * 50_000, b'{"pid": 1, "result_json": 5}',
        b'{"pid": 1, "phase": ["done"], "error": {"a": 1}}', b"1" * 10_000, b'{"pid": true, "result_json": "1"}',
        b'{"pid": 2, "result_json": "1"}', b'{"pid": 1, "error": "' + b"x" * 500 + b'"}', b"\n" * 100_000,
    ])
    def test_pathological_lines_never_raise(self, raw):
        status = parse_status(raw)
        assert status.result_json is None and status.error is None

    def test_the_program_process_own_last_line(self):
        lines = b'{"pid": 1, "result_json": "1"}\n{"pid": 7, "result_json": "2"}\n'
        assert parse_status(lines).result_json == "1"
        assert parse_status(lines + b'{"pid": 1, "result_json": "3"}\n').result_json == "3"
