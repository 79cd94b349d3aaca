"""`tessy sandbox run` on every tests-file shape, and the shape of `tessy sandbox bench --json`."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from tessy_core.cli import app

SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


def invoke(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["sandbox", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "main.py"
    path.write_text(SUM)
    return path


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


TEST_FILES = {
    "pairs": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5", "output": "10"}],
    "catalog_tests": [{"kind": "stdio", "input": "1 2\n", "output": "3\n", "hidden": False},
                      {"kind": "stdio", "input": "5 5", "output": "10", "hidden": True}],
    "prompt_row": {"statement": "Add two numbers.", "time_limit_s": 1.5, "memory_limit_mb": 128,
                   "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5", "output": "10"}]},
    "apps_row": {"question": "Add two numbers.",
                 "input_output": json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})},
    "codecontests_row": {"description": "Add two numbers.", "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
                         "private_tests": {"input": ["5 5\n"], "output": ["10\n"]}},
    "open_r1_row": {"problem": "Add two numbers.", "verification_info": json.dumps(
        {"language": "python", "test_cases": [{"type": "stdin_stdout", "input": "1 2\n", "output": "3\n"},
                                              {"type": "stdin_stdout", "input": "5 5\n", "output": "10\n"}]})},
}


@pytest.mark.parametrize("shape", sorted(TEST_FILES))
def test_run_accepts_every_tests_file_shape(program, tmp_path, shape):
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", TEST_FILES[shape])))
    assert code == 0, out
    assert (out["ok"], out["verdict"], out["total"]) == (True, "accepted", 2)
    assert len(out["tests"]) == out["passed"] == out["total"]


def test_run_reports_a_wrong_answer_with_details(tmp_path):
    program = tmp_path / "main.py"
    program.write_text(SUM.replace("a + b", "a * b"))
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", TEST_FILES["pairs"])))
    assert code == 0
    assert out["verdict"] == "wrong_answer" and out["tests"][0]["stdout"] == "2\n"


def test_call_based_apps_row_with_wrapped_results(tmp_path):
    program = tmp_path / "main.py"
    program.write_text("class Solution:\n    def add(self, a, b):\n        return a + b\n")
    row = {"question": "Add.", "input_output": {"fn_name": "add", "inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]]}}
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", row)))
    assert (code, out["verdict"], out["passed"]) == (0, "accepted", 2)


def test_limits_come_from_the_prompt_and_the_flags(tmp_path):
    program = tmp_path / "main.py"
    program.write_text("import time\ntime.sleep(1.5)\nprint(1)\n")
    row = {"statement": "x", "time_limit_s": 0.2, "tests": [{"input": "", "output": "1"}]}
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", row)))
    assert out["verdict"] == "time_limit"
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", row)),
                       "--time-limit", "2")
    assert out["verdict"] == "accepted"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"tests": "nope"}', "'tests' must be a JSON list"),
    ('"just a string"', "expected a JSON list"),
    ('{"foo": 1}', "unknown_shape"),
    ('[{"input": "1"}]', "output"),
    ("[]", "no tests"),
])
def test_bad_tests_files_fail_clearly(program, tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    code, out = invoke("run", "--code", str(program), "--tests", str(path))
    assert code == 1 and out["ok"] is False
    assert message in out["error"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed: C++ judging skipped")
def test_run_cpp_by_suffix(tmp_path):
    program = tmp_path / "main.cpp"
    program.write_text("#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n")
    code, out = invoke("run", "--code", str(program), "--tests", str(write(tmp_path, "t.json", TEST_FILES["pairs"])))
    assert (code, out["verdict"]) == (0, "accepted")


def test_bench_reports_both_rates_and_their_ratio():
    code, out = invoke("bench", "--n", "40")
    assert code == 0, out
    assert out["executions"] == 40 and out["wrong_verdicts"] == 0
    assert out["executions_per_s"] > 0 and out["baseline_executions_per_s"] > 0
    assert out["speedup"] == pytest.approx(out["executions_per_s"] / out["baseline_executions_per_s"], rel=0.02)
    assert out["cpu_ms_per_execution"] > 0 and out["baseline_cpu_ms_per_execution"] > 0
    assert all(out["isolation"].values())
