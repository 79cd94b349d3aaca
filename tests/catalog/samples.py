"""One raw row per supported dataset shape, and helpers that write rows as JSONL or Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TESSY_ROW: dict[str, Any] = {
    "statement": "Read two integers and print their sum.",
    "tests": [
        {"kind": "stdio", "input": "1 2\n", "output": "3\n"},
        {"kind": "stdio", "input": "5 5\n", "output": "10\n", "hidden": True},
    ],
    "time_limit_s": 1.0,
    "memory_limit_mb": 128,
    "difficulty": "easy",
    "tags": ["math"],
    "source_id": "sum-1",
    "license": "cc-by-4.0",
}

APPS_STDIO_ROW: dict[str, Any] = {
    "problem_id": 17,
    "question": "Print the maximum of N numbers.",
    "input_output": json.dumps({"inputs": ["3\n1 5 2\n"], "outputs": ["5\n"]}),
    "difficulty": "introductory",
    "url": "https://example.org/apps/17",
    "starter_code": "",
}

APPS_CALL_ROW: dict[str, Any] = {
    "question": "Write a function add(a, b) returning a + b.",
    "input_output": {"inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]], "fn_name": "add"},
    "difficulty": "interview",
    "url": "https://example.org/apps/18",
    "starter_code": "def add(a, b):\n    ",
}

TACO_ROW: dict[str, Any] = {
    "question": "Reverse the given string.",
    "input_output": json.dumps({"inputs": ["abc\n"], "outputs": ["cba\n"]}),
    "difficulty": "EASY",
    "url": "https://example.org/taco/3",
    "tags": "['String', 'Implementation']",
    "time_limit": "0.5 seconds",
    "memory_limit": "64 megabytes",
}

CODECONTESTS_ROW: dict[str, Any] = {
    "name": "1548_A. Weak Hero",
    "description": "Count the vertices that survive the process.",
    "public_tests": {"input": ["1\n"], "output": ["1\n"]},
    "private_tests": {"input": ["2\n"], "output": ["2\n"]},
    "generated_tests": {"input": ["3\n", "4\n"], "output": ["3\n", "4\n"]},
    "difficulty": 8,
    "cf_tags": ["graphs"],
    "time_limit": {"seconds": 2, "nanos": 500_000_000},
    "memory_limit_bytes": 256 * 1024 * 1024,
}

OPEN_R1_ROW: dict[str, Any] = {
    "problem_id": "cf_1",
    "problem": "Solve the following coding problem: print hello.",
    "verification_info": json.dumps(
        {"language": "Python", "test_cases": [{"input": "", "output": "hello\n", "type": "stdin_stdout"}]}
    ),
}

OPEN_R1_CALL_ROW: dict[str, Any] = {
    "prompt": "Implement square(x).",
    "verification_info": {
        "language": "python",
        "test_cases": [{"fn_name": "square", "input": [3], "output": [9], "type": "function_call"}],
    },
}

LIVECODEBENCH_ROW: dict[str, Any] = {
    "question_id": "abc301_a",
    "question_content": "Given N, print N squared.",
    "public_test_cases": json.dumps([{"input": "3\n", "output": "9\n", "testtype": "stdin"}]),
    "private_test_cases": json.dumps([{"input": "4\n", "output": "16\n", "testtype": "stdin"}]),
    "metadata": "{}",
    "difficulty": "easy",
}

LIVECODEBENCH_CALL_ROW: dict[str, Any] = {
    "question_id": "lc_1",
    "question_content": "Return the sum of nums shifted by k.",
    "public_test_cases": json.dumps([{"input": "[1, 2]\n3", "output": "6", "testtype": "functional"}]),
    "private_test_cases": "[]",
    "metadata": json.dumps({"func_name": "shiftedSum"}),
    "starter_code": "class Solution:\n    def shiftedSum(self, nums, k):\n        ",
    "difficulty": "medium",
}

PROMPT_ONLY_ROW: dict[str, Any] = {"prompt": "Explain how to find a cycle in a linked list.", "id": "p-9"}

ALL_SHAPES: dict[str, dict[str, Any]] = {
    "tessy": TESSY_ROW,
    "apps_stdio": APPS_STDIO_ROW,
    "apps_call": APPS_CALL_ROW,
    "taco": TACO_ROW,
    "codecontests": CODECONTESTS_ROW,
    "open_r1": OPEN_R1_ROW,
    "open_r1_call": OPEN_R1_CALL_ROW,
    "livecodebench": LIVECODEBENCH_ROW,
    "livecodebench_call": LIVECODEBENCH_CALL_ROW,
    "prompt_only": PROMPT_ONLY_ROW,
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
