"""Verdicts of ordinary programs on stdio and call-based tests, in Python and C++, through the real sandbox."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from tessy_core.verify import ExecutionLimits, Program, Verdict, verify_answer, verify_answer_async
from tests.verify.conftest import run, start_sandbox

ADD = [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6\n", "hidden": True}]


def test_accepted_with_per_test_details(sandbox):
    result = run(sandbox, "a, b = map(int, input().split())\nprint(a + b)\n", ADD)
    assert (result.verdict, result.passed, result.total) == (Verdict.ACCEPTED, 2, 2)
    assert [t.hidden for t in result.tests] == [False, True]
    assert result.tests[1].stdout == "6\n" and result.tests[1].exit_code == 0
    record = result.to_record()
    assert record["verdict"] == "accepted" and json.loads(record["details_json"])["tests"][0]["expected"] == "3\n"


def test_wrong_answer_stops_at_the_first_failure(sandbox):
    result = run(sandbox, "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n", ADD + ADD)
    assert (result.verdict, result.passed, result.total, len(result.tests)) == (Verdict.WRONG_ANSWER, 1, 4, 2)
    assert result.tests[1].expected == "6\n" and result.tests[1].stdout == "0\n"


def test_every_test_runs_when_asked():
    with start_sandbox(stop_on_first_failure=False) as pool:
        result = run(pool, "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n", ADD + ADD)
    assert [t.verdict for t in result.tests] == [Verdict.ACCEPTED, Verdict.WRONG_ANSWER] * 2
    assert (result.verdict, result.passed) == (Verdict.WRONG_ANSWER, 2)


def test_tolerant_comparison(sandbox):
    result = run(sandbox, "print('  %.9f  ' % (1/3))\nprint()\n", [{"input": "", "output": "0.3333333\n"}])
    assert result.verdict is Verdict.ACCEPTED
    result = run(sandbox, "print(0.3334)\n", [{"input": "", "output": "0.3333333\n"}])
    assert result.verdict is Verdict.WRONG_ANSWER


def test_exit_codes(sandbox):
    assert run(sandbox, "import sys\nprint(1)\nsys.exit(0)\n", [{"input": "", "output": "1"}]).verdict is Verdict.ACCEPTED
    result = run(sandbox, "import sys\nprint(1)\nsys.exit(3)\n", [{"input": "", "output": "1"}])
    assert result.verdict is Verdict.RUNTIME_ERROR and result.tests[0].exit_code == 3
    result = run(sandbox, "import sys\nsys.exit('bad input')\n")
    assert result.verdict is Verdict.RUNTIME_ERROR and "bad input" in result.tests[0].stderr


def test_runtime_error_carries_the_exception(sandbox):
    result = run(sandbox, "print(1 // int(input()))\n", [{"input": "0\n", "output": "0\n"}])
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "ZeroDivisionError" in result.message and "main.py" in result.tests[0].stderr


def test_syntax_error_is_a_compile_error(sandbox):
    result = run(sandbox, "def f(:\n    pass\n", ADD)
    assert result.verdict is Verdict.COMPILE_ERROR and "SyntaxError" in result.message


def test_programs_do_not_see_each_others_state(sandbox):
    # Each execution starts from the warm zygote, not from the previous program's interpreter.
    first = run(sandbox, "import math\nmath.pi = 3\nprint(math.pi)\n", [{"input": "", "output": "3"}])
    second = run(sandbox, "import math\nprint(round(math.pi, 2))\n", [{"input": "", "output": "3.14"}])
    assert first.verdict is second.verdict is Verdict.ACCEPTED


def test_threads_and_atexit(sandbox):
    source = ("import atexit, threading\natexit.register(lambda: print('bye'))\nout = []\n"
              "t = threading.Thread(target=lambda: out.append(7))\nt.start(); t.join()\nprint(out[0])\n")
    assert run(sandbox, source, [{"input": "", "output": "7\nbye\n"}]).verdict is Verdict.ACCEPTED


def test_imports_of_the_standard_library_beyond_the_warm_set(sandbox):
    source = "import json, hashlib, sqlite3\nprint(json.dumps({'h': hashlib.md5(b'').hexdigest()[:4]}))\n"
    assert run(sandbox, source, [{"input": "", "output": '{"h": "d41d"}'}]).verdict is Verdict.ACCEPTED


class TestCallBased:
    def call(self, fn_name, args, expected):
        return {"kind": "call", "fn_name": fn_name, "args": args, "expected": expected}

    def test_top_level_function(self, sandbox):
        result = run(sandbox, "def add(a, b):\n    return a + b\n", [self.call("add", [2, 3], 5), self.call("add", [[1], [2]], [1, 2])])
        assert result.verdict is Verdict.ACCEPTED and result.passed == 2

    def test_solution_class_and_tuples(self, sandbox):
        source = "class Solution:\n    def pair(self, n):\n        return (n, n * 0.1)\n"
        assert run(sandbox, source, [self.call("pair", [3], [3, 0.3])]).verdict is Verdict.ACCEPTED

    def test_wrong_value(self, sandbox):
        result = run(sandbox, "def add(a, b):\n    return a - b\n", [self.call("add", [2, 3], 5)])
        assert result.verdict is Verdict.WRONG_ANSWER and result.message == "returned -1"

    def test_bool_is_not_an_int(self, sandbox):
        result = run(sandbox, "def ok(x):\n    return 1\n", [self.call("ok", [0], True)])
        assert result.verdict is Verdict.WRONG_ANSWER

    def test_missing_function(self, sandbox):
        result = run(sandbox, "def other():\n    return 1\n", [self.call("add", [1, 2], 3)])
        assert result.verdict is Verdict.RUNTIME_ERROR and "NameError" in result.message

    def test_unserializable_return_value(self, sandbox):
        result = run(sandbox, "def f():\n    return {1, 2}\n", [self.call("f", [], [1, 2])])
        assert result.verdict is Verdict.RUNTIME_ERROR and "not JSON-serializable" in result.tests[0].stderr

    def test_function_that_raises(self, sandbox):
        result = run(sandbox, "def f(x):\n    return 1 / x\n", [self.call("f", [0], 1)])
        assert result.verdict is Verdict.RUNTIME_ERROR and "ZeroDivisionError" in result.message

    def test_function_that_exits_early(self, sandbox):
        result = run(sandbox, "import sys\ndef f():\n    sys.exit(0)\n", [self.call("f", [], 1)])
        assert result.verdict is Verdict.RUNTIME_ERROR and "without returning" in result.message

    def test_forged_status_line_is_ignored(self, sandbox):
        for pid in ("1", "os.getpid()"):
            source = (f"import json, os\nos.write(3, (json.dumps({{'pid': {pid}, 'result_json': '5'}}) + '\\n').encode())\n"
                      "def add(a, b):\n    return a - b\n")
            assert run(sandbox, source, [self.call("add", [2, 3], 5)]).verdict is Verdict.WRONG_ANSWER


def test_answers_verify_concurrently(sandbox):
    answers = [f"Here you go:\n```python\nprint(int(input()) * {k})\n```" for k in range(12)]

    async def verify_all():
        return await asyncio.gather(*(verify_answer_async(sandbox, answer, [{"input": "2", "output": "8"}])
                                      for answer in answers))

    verdicts = [result.verdict for result in asyncio.run(verify_all())]
    assert verdicts == [Verdict.ACCEPTED if k == 4 else Verdict.WRONG_ANSWER for k in range(12)]


def test_answer_without_code(sandbox):
    result = verify_answer(sandbox, "<think>```python\nprint(3)\n```</think>I can't solve this.", ADD)
    assert (result.verdict, result.total) == (Verdict.NO_CODE, 2)


def test_empty_tests_are_a_clear_error(sandbox):
    with pytest.raises(ValueError, match="no tests"):
        run(sandbox, "print(1)\n", [])


needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed: C++ judging skipped")


@needs_cxx
class TestCpp:
    LIMITS = ExecutionLimits(time_limit_s=1, memory_limit_mb=128)

    def cpp(self, sandbox, source, tests=ADD):
        return run(sandbox, source, tests, limits=self.LIMITS, language="cpp")

    def test_accepted_and_wrong(self, sandbox):
        source = "#include <cstdio>\nint main(){long a,b;scanf(\"%ld %ld\",&a,&b);printf(\"%ld\\n\",a+b);}\n"
        assert self.cpp(sandbox, source).verdict is Verdict.ACCEPTED
        assert self.cpp(sandbox, source.replace("a+b", "a*b")).verdict is Verdict.WRONG_ANSWER

    def test_compile_error(self, sandbox):
        result = self.cpp(sandbox, "int main(){ return undefined_name; }\n")
        assert result.verdict is Verdict.COMPILE_ERROR and "undefined_name" in result.message

    def test_segfault(self, sandbox):
        result = self.cpp(sandbox, "int main(){ volatile int *p = nullptr; *p = 1; }\n")
        assert result.verdict is Verdict.RUNTIME_ERROR and "SIGSEGV" in result.message

    def test_infinite_loop(self, sandbox):
        assert self.cpp(sandbox, "int main(){ volatile long x = 0; for(;;) x++; }\n").verdict is Verdict.TIME_LIMIT

    def test_memory_bomb(self, sandbox):
        source = "#include <vector>\n#include <cstdio>\nint main(){ std::vector<char> v(1L << 30, 1); printf(\"%d\", v[5]); }\n"
        assert self.cpp(sandbox, source).verdict is Verdict.MEMORY_LIMIT

    def test_program_cannot_replace_its_own_binary(self, sandbox):
        source = ("#include <cstdio>\nint main(){ FILE *f = fopen(\"/proc/self/exe\", \"w\"); "
                  "printf(f ? \"writable\\n\" : \"denied\\n\"); }\n")
        result = self.cpp(sandbox, source, [{"input": "", "output": "denied"}] * 2)
        assert result.verdict is Verdict.ACCEPTED

    def test_cpp_answer_extracted_and_judged(self, sandbox):
        answer = "```cpp\n#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b;}\n```"
        assert verify_answer(sandbox, answer, ADD, self.LIMITS, language="cpp").verdict is Verdict.ACCEPTED


def test_limits_from_a_prompt_row():
    limits = ExecutionLimits.from_prompt({"time_limit_s": 3.0, "memory_limit_mb": None, "statement": "x"})
    assert (limits.time_limit_s, limits.memory_limit_mb) == (3.0, 256)
    assert Program(source="x").language == "python"
