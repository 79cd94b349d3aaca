"""Program extraction from answers, tolerant output comparison, test parsing, verdict classification."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tessy_core.verify import CallTest, StdioTest, Verdict, extract_program, parse_tests
from tessy_core.verify.classify import classify_execution
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

    def test_floats_within_tolerance(self):
        assert outputs_match("3.1415927", "3.14159265")
        assert outputs_match("1e-9", "0")
        assert outputs_match("1000000.5", "1000000.5000004")
        assert not outputs_match("3.15", "3.14159265")
        assert not outputs_match("2.5", "2.6", abs_tol=0.01, rel_tol=0.0)
        assert outputs_match("2.5", "2.6", abs_tol=0.2, rel_tol=0.0)

    def test_integers_compare_exactly(self):
        assert not outputs_match(str(10**18 + 1), str(10**18))
        assert outputs_match("+7", "7")
        assert outputs_match("007", "7")

    def test_words_compare_exactly(self):
        assert not outputs_match("Yes", "YES")
        assert outputs_match("nan", "nan ")  # identical tokens match even when not finite numbers
        assert not outputs_match("inf", "1e308")

    def test_values(self):
        assert values_match([1, 2.0000001, {"a": [True]}], [1, 2.0, {"a": [True]}])
        assert not values_match(True, 1)
        assert not values_match(1, True)
        assert not values_match([1, 2], [1, 2, 3])
        assert not values_match({"a": 1}, {"b": 1})
        assert values_match(0.1 + 0.2, 0.3)
        assert not values_match(10**18 + 1, 10**18)
        assert values_match("x", "x") and not values_match("x", "y")
        assert values_match(None, None) and not values_match(None, 0)


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
    raw = {"exit_code": 0, "wall_s": 0.01, "cpu_s": 0.01, "max_rss_kb": 10_000, "timed_out": False,
           "output_limit": False, "stdout": "", "stdout_bytes": 0, "stderr": "", "status": {"phase": "done"}}
    return {**raw, **overrides}


class TestClassification:
    def test_clean_exit_leaves_the_verdict_to_the_output(self):
        assert classify_execution(_raw(), 1.0, 256) is None

    def test_wall_timeout(self):
        assert classify_execution(_raw(timed_out=True, exit_code=-9), 1.0, 256).verdict is Verdict.TIME_LIMIT

    def test_cpu_signal(self):
        assert classify_execution(_raw(exit_code=-24, cpu_s=0.2), 1.0, 256).verdict is Verdict.TIME_LIMIT

    def test_cpu_over_limit_even_with_clean_exit(self):
        assert classify_execution(_raw(cpu_s=1.2), 1.0, 256).verdict is Verdict.TIME_LIMIT

    def test_memory(self):
        status = {"phase": "error", "error": "MemoryError"}
        assert classify_execution(_raw(exit_code=1, status=status), 1.0, 256).verdict is Verdict.MEMORY_LIMIT
        bad_alloc = _raw(exit_code=-6, stderr="terminate called after throwing an instance of 'std::bad_alloc'\n")
        assert classify_execution(bad_alloc, 1.0, 256).verdict is Verdict.MEMORY_LIMIT
        peak = _raw(exit_code=-11, max_rss_kb=250 * 1024)
        assert classify_execution(peak, 1.0, 256).verdict is Verdict.MEMORY_LIMIT

    def test_runtime_errors(self):
        failure = classify_execution(_raw(exit_code=1, status={"phase": "error", "error": "ZeroDivisionError"}), 1, 256)
        assert failure.verdict is Verdict.RUNTIME_ERROR and "ZeroDivisionError" in failure.message
        assert classify_execution(_raw(exit_code=-11), 1.0, 256).message == "killed by SIGSEGV"
        assert classify_execution(_raw(exit_code=3, status={}), 1.0, 256).message == "exit code 3"

    def test_compile_and_output_limit(self):
        compile_error = _raw(exit_code=1, status={"phase": "compile"}, stderr="  File x\nSyntaxError: bad\n")
        assert classify_execution(compile_error, 1, 256).verdict is Verdict.COMPILE_ERROR
        flood = _raw(output_limit=True, exit_code=-9, stdout_bytes=9 << 20)
        assert classify_execution(flood, 1, 256).verdict is Verdict.WRONG_ANSWER

    def test_sandbox_setup_failure_is_not_the_programs_fault(self):
        with pytest.raises(SandboxError):
            classify_execution(_raw(exit_code=120, status={"phase": "setup", "error": "boom"}), 1, 256)
