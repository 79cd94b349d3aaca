"""The problem families of the small world: statements, bug-catching inputs and the work to solve them.

Each family knows its statement wordings, how to draw inputs (random ones and ones that catch the
family's typical bug), and two approaches: the correct one and a plausible buggy one. An approach is
a capability clause (the sentence a model writes in its thinking) plus the code that follows from it.
Those clauses are shared by teacher and student: the two models differ only in style.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Callable, Literal

InputKind = Literal["ints", "pair", "int", "text", "word"]

READ_INPUT: dict[InputKind, str] = {
    "ints": "nums = list(map(int, input().split()))",
    "pair": "a, b = map(int, input().split())",
    "int": "n = int(input())",
    "text": "s = input().strip()",
    "word": "s = input().strip()",
}

PLAN_CLAUSE: dict[InputKind, str] = {
    "ints": "the code reads one line, turns it into a list of integers and prints the result",
    "pair": "the code reads the two integers from one line and prints the result",
    "int": "the code reads one integer and prints the result",
    "text": "the code reads the whole line as a string and prints the result",
    "word": "the code reads the word as a string and prints the result",
}

# Context nouns that vary the statements without changing the task (nothing to copy into code).
CONTEXT_NOUNS: dict[InputKind, tuple[str, ...]] = {
    "ints": ("numbers", "scores", "temperatures", "prices", "weights", "readings", "points", "heights"),
    "pair": ("two integers", "two numbers", "a pair of integers", "two whole numbers"),
    "int": ("a number", "an integer", "a whole number", "a value"),
    "text": ("a sentence", "a message", "a title", "a line of text", "a note"),
    "word": ("a word", "a name", "a code word", "a string of letters"),
}

_WORDS = (
    "apple", "river", "stone", "happy", "day", "sky", "cat", "moon", "tree", "yellow", "quiet",
    "blue", "green", "lamp", "bird", "sunny", "road", "music", "cloud", "fish", "gray", "paper",
)
_LETTERS = "abcdeghiklmnoprstu"


@dataclass(frozen=True)
class Approach:
    """One way to solve a family: what the thinking says, and the code that follows from it."""

    clause: str
    body: str
    edges: tuple[str, ...]


@dataclass(frozen=True)
class Family:
    name: str
    input_kind: InputKind
    wordings: tuple[str, ...]
    tasks: tuple[str, ...]
    correct: Approach
    buggy: Approach
    examples: tuple[str, ...]
    random_input: Callable[[Random], str]
    # Inputs chosen to expose `buggy`; every problem's hidden tests include ones that do.
    bug_catcher: Callable[[Random], str]

    def code(self, approach: Approach) -> str:
        return f"{READ_INPUT[self.input_kind]}\n{approach.body}"


# --- input drawing ----------------------------------------------------------------------------


def _line(values: list[int]) -> str:
    return " ".join(str(v) for v in values)


def _ints(rng: Random, low: int = -9, high: int = 30, n_min: int = 3, n_max: int = 7) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(n_min, n_max))]


def _random_ints(rng: Random) -> str:
    return _line(_ints(rng))


def _first_nonzero(rng: Random) -> str:
    values = _ints(rng)
    values[0] = rng.randint(1, 9)
    return _line(values)


def _all_negative(rng: Random) -> str:
    return _line(_ints(rng, -30, -1))


def _all_positive(rng: Random) -> str:
    return _line(_ints(rng, 1, 30))


def _with_zero(rng: Random) -> str:
    values = _ints(rng, -5, 9)
    values[rng.randrange(len(values))] = 0
    return _line(values)


def _two_distinct(rng: Random) -> str:
    while True:
        values = _ints(rng)
        if len(set(values)) >= 2:
            return _line(values)


def _duplicated_max(rng: Random) -> str:
    while True:
        values = _ints(rng, n_min=4)
        top = max(values) + rng.randint(1, 5)
        i, j = rng.sample(range(len(values)), 2)
        values[i] = values[j] = top
        if len(set(values)) >= 2:
            return _line(values)


def _text(rng: Random, n_min: int = 2, n_max: int = 4) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(n_min, n_max)))


def _text_not_symmetric(rng: Random) -> str:
    while True:
        text = _text(rng)
        if text[::-1] != " ".join(reversed(text.split())):
            return text


def _text_with_y(rng: Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 3))]
    words.insert(rng.randrange(len(words) + 1), rng.choice(("happy", "day", "sky", "yellow", "sunny", "gray")))
    return " ".join(words)


def _small_pair(rng: Random) -> str:
    return f"{rng.randint(1, 60)} {rng.randint(1, 60)}"


def _dividing_pair(rng: Random) -> str:
    small = rng.randint(2, 12)
    big = small * rng.randint(1, 6)
    pair = [small, big]
    rng.shuffle(pair)
    return _line(pair)


def _random_int(rng: Random) -> str:
    return str(rng.randint(1, 100))


def _prime_square_or_one(rng: Random) -> str:
    return str(rng.choice((1, 2, 4, 9, 25, 49)))


def _multiple_of_15(rng: Random) -> str:
    return str(15 * rng.randint(1, 6))


def _string_order_differs(rng: Random) -> str:
    values = _ints(rng, -9, 30, n_min=3, n_max=6) + [rng.randint(2, 9), rng.randint(10, 19)]
    rng.shuffle(values)
    return _line(values)


def _word(rng: Random) -> str:
    return "".join(rng.choice(_LETTERS) for _ in range(rng.randint(2, 7)))


def _palindrome(rng: Random) -> str:
    half = _word(rng)[: rng.randint(1, 3)]
    return half + rng.choice(("", rng.choice(_LETTERS))) + half[::-1]


def _random_word(rng: Random) -> str:
    return _palindrome(rng) if rng.random() < 0.4 else _word(rng)


def _same_ends_not_palindrome(rng: Random) -> str:
    while True:
        end = rng.choice(_LETTERS)
        word = end + _word(rng) + end
        if word != word[::-1]:
            return word


def _all_odd(rng: Random) -> str:
    return _line([2 * rng.randint(-5, 15) + 1 for _ in range(rng.randint(3, 7))])


def _product_ints(rng: Random) -> str:
    return _line([rng.randint(-3, 6) for _ in range(rng.randint(2, 5))])


def _product_no_zero(rng: Random) -> str:
    return _line([rng.choice((-3, -2, -1, 1, 2, 3, 4, 5, 6)) for _ in range(rng.randint(2, 5))])


def _ascending_pair(rng: Random) -> str:
    a = rng.randint(-20, 40)
    return f"{a} {a + rng.randint(1, 30)}"


def _signed_pair(rng: Random) -> str:
    return f"{rng.randint(-20, 40)} {rng.randint(-20, 40)}"


def _with_duplicate(rng: Random) -> str:
    values = _ints(rng, -5, 15, n_min=3)
    values.append(rng.choice(values))
    rng.shuffle(values)
    return _line(values)


def _ends_not_extremes(rng: Random) -> str:
    while True:
        values = _ints(rng, n_min=4)
        if values[-1] - values[0] != max(values) - min(values):
            return _line(values)


# --- the families -------------------------------------------------------------------------------


def _loop_best(sign: str, start: str) -> str:
    return f"best = {start}\nfor x in nums:\n    if x {sign} best:\n        best = x\nprint(best)"


FAMILIES: tuple[Family, ...] = (
    Family(
        name="sum_list",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers separated by spaces) and print their total.",
            "You are given {things} on one line. Output the sum of all of them.",
            "Compute the sum of the {things} given on a single line and print it.",
        ),
        tasks=("the input is one line of integers and the answer is their total",
               "the task is to add up every number on the line"),
        correct=Approach("the approach is to add every number on the line with sum",
                         "print(sum(nums))", ("negative numbers simply lower the total",)),
        buggy=Approach("the approach is to skip the first number as a count and add the rest with sum",
                       "print(sum(nums[1:]))", ("the numbers after the count can be negative",)),
        examples=("for 3 1 2 the answer is 6", "for 5 -2 the answer is 3"),
        random_input=_random_ints,
        bug_catcher=_first_nonzero,
    ),
    Family(
        name="max_list",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print the largest one.",
            "Given {things} on one line, output the maximum value.",
            "Print the biggest of the {things} that appear on the single input line.",
        ),
        tasks=("the input is one line of integers and the answer is the largest of them",
               "the task is to find the maximum value on the line"),
        correct=Approach("the approach is to start the best at the first number and keep any larger number",
                         _loop_best(">", "nums[0]"), ("a list of only negative numbers still has a largest value",)),
        buggy=Approach("the approach is to start the best at zero and keep any larger number",
                       _loop_best(">", "0"), ("a list with one number gives that number",)),
        examples=("for 3 7 2 the answer is 7", "for -4 -1 -9 the answer is -1"),
        random_input=_random_ints,
        bug_catcher=_all_negative,
    ),
    Family(
        name="min_list",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print the smallest one.",
            "Given {things} on one line, output the minimum value.",
            "Print the lowest of the {things} that appear on the single input line.",
        ),
        tasks=("the input is one line of integers and the answer is the smallest of them",
               "the task is to find the minimum value on the line"),
        correct=Approach("the approach is to start the best at the first number and keep any smaller number",
                         _loop_best("<", "nums[0]"), ("a list of only positive numbers still has a smallest value",)),
        buggy=Approach("the approach is to start the best at zero and keep any smaller number",
                       _loop_best("<", "0"), ("a list with one number gives that number",)),
        examples=("for 3 7 2 the answer is 2", "for 8 5 9 the answer is 5"),
        random_input=_random_ints,
        bug_catcher=_all_positive,
    ),
    Family(
        name="count_positive",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print how many of them are strictly greater than zero.",
            "Given {things} on one line, count the positive values and print the count.",
            "How many of the {things} on the input line are positive (above zero)? Print that number.",
        ),
        tasks=("the input is one line of integers and the answer is how many are above zero",
               "the task is to count the positive numbers on the line"),
        correct=Approach("the approach is to count the numbers that are strictly greater than zero",
                         "print(sum(1 for x in nums if x > 0))", ("a zero is not positive and must not be counted",)),
        buggy=Approach("the approach is to count the numbers that are at least zero",
                       "print(sum(1 for x in nums if x >= 0))", ("negative numbers are not counted",)),
        examples=("for 3 -1 2 the answer is 2", "for -4 5 0 the answer is 1"),
        random_input=_with_zero,
        bug_catcher=_with_zero,
    ),
    Family(
        name="second_largest",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers, at least two different values) and print the second largest distinct value.",
            "Given {things} on one line, output the largest value that is strictly smaller than the maximum.",
            "Print the second biggest distinct number among the {things} on the input line.",
        ),
        tasks=("the input is one line of integers and the answer is the second largest distinct value",
               "the task is to find the biggest value below the maximum"),
        correct=Approach("the approach is to remove duplicates with set, sort the values and take the second from the end",
                         "print(sorted(set(nums))[-2])", ("a repeated maximum must be counted only once",)),
        buggy=Approach("the approach is to sort the numbers and take the second from the end",
                       "print(sorted(nums)[-2])", ("the list always has at least two numbers",)),
        examples=("for 3 7 2 the answer is 3", "for 9 9 4 the answer is 4"),
        random_input=_two_distinct,
        bug_catcher=_duplicated_max,
    ),
    Family(
        name="reverse_string",
        input_kind="text",
        wordings=(
            "Read {things} (one line of lowercase words) and print it with all characters in reverse order.",
            "Given {things} on one line, output the line reversed character by character.",
            "Print {things} backwards: the last character first and the first character last.",
        ),
        tasks=("the input is one line of text and the answer is the same line read backwards",
               "the task is to reverse the line character by character"),
        correct=Approach("the approach is to reverse the characters of the line with slicing",
                         "print(s[::-1])", ("spaces are characters too and move with the rest",)),
        buggy=Approach("the approach is to reverse the order of the words",
                       "print(' '.join(s.split()[::-1]))", ("a line with one word stays as it is",)),
        examples=("for ab cd the answer is dc ba", "for moon the answer is noom"),
        random_input=_text,
        bug_catcher=_text_not_symmetric,
    ),
    Family(
        name="count_vowels",
        input_kind="text",
        wordings=(
            "Read {things} (lowercase letters and spaces) and print how many vowels it contains; the vowels are a, e, i, o and u.",
            "Given {things} on one line, count the letters a, e, i, o, u and print the count.",
            "How many vowels (a, e, i, o, u only) are in {things}? Print that number.",
        ),
        tasks=("the input is one line of text and the answer is the number of vowels",
               "the task is to count the vowel letters in the line"),
        correct=Approach("the approach is to count the characters that are in aeiou",
                         "print(sum(1 for c in s if c in 'aeiou'))", ("the letter y is not a vowel here",)),
        buggy=Approach("the approach is to count the characters that are in aeiouy",
                       "print(sum(1 for c in s if c in 'aeiouy'))", ("spaces are not letters",)),
        examples=("for sky blue the answer is 2", "for apple the answer is 2"),
        random_input=_text,
        bug_catcher=_text_with_y,
    ),
    Family(
        name="gcd",
        input_kind="pair",
        wordings=(
            "Read {things} (positive) from one line and print their greatest common divisor.",
            "Given {things} on a line, output the largest number that divides both.",
            "Print the gcd of {things} given on the single input line.",
        ),
        tasks=("the input is two positive integers and the answer is their greatest common divisor",
               "the task is to find the biggest number that divides both"),
        correct=Approach("the approach is to try every d from 1 up to and including the smaller number",
                         "g = 1\nfor d in range(1, min(a, b) + 1):\n    if a % d == 0 and b % d == 0:\n        g = d\nprint(g)",
                         ("when one number divides the other the answer is the smaller one",)),
        buggy=Approach("the approach is to try every d from 1 up to the smaller number",
                       "g = 1\nfor d in range(1, min(a, b)):\n    if a % d == 0 and b % d == 0:\n        g = d\nprint(g)",
                       ("the answer is at least 1",)),
        examples=("for 12 18 the answer is 6", "for 4 8 the answer is 4"),
        random_input=_small_pair,
        bug_catcher=_dividing_pair,
    ),
    Family(
        name="is_prime",
        input_kind="int",
        wordings=(
            "Read {things} n and print YES if n is prime, otherwise NO.",
            "Given {things} on one line, output YES when it is a prime number and NO when it is not.",
            "Decide whether {things} is prime. Print YES or NO.",
        ),
        tasks=("the input is one integer and the answer is YES when it is prime",
               "the task is to test the number for primality"),
        correct=Approach("the approach is to try divisors d while d times d is at most n",
                         "ok = n > 1\nd = 2\nwhile d * d <= n:\n    if n % d == 0:\n        ok = False\n    d += 1\nprint('YES' if ok else 'NO')",
                         ("squares of primes like 9 and 25 are not prime and 1 is not prime",)),
        buggy=Approach("the approach is to try divisors d while d times d is below n",
                       "ok = n > 1\nd = 2\nwhile d * d < n:\n    if n % d == 0:\n        ok = False\n    d += 1\nprint('YES' if ok else 'NO')",
                       ("2 is the only even prime",)),
        examples=("for 7 the answer is YES", "for 9 the answer is NO"),
        random_input=_random_int,
        bug_catcher=_prime_square_or_one,
    ),
    Family(
        name="fizzbuzz",
        input_kind="int",
        wordings=(
            "Read {things} n. Print FizzBuzz if n is divisible by 15, Fizz if by 3, Buzz if by 5, else n itself.",
            "Given {things}, output Fizz for multiples of 3, Buzz for multiples of 5, FizzBuzz for multiples of both, otherwise the number.",
            "Apply the fizzbuzz rule to {things}: FizzBuzz, Fizz, Buzz or the number.",
        ),
        tasks=("the input is one integer and the answer follows the fizzbuzz rule",
               "the task is to print Fizz, Buzz, FizzBuzz or the number"),
        correct=Approach("the approach is to check divisibility by 15 first, then by 3, then by 5",
                         "if n % 15 == 0:\n    print('FizzBuzz')\nelif n % 3 == 0:\n    print('Fizz')\nelif n % 5 == 0:\n    print('Buzz')\nelse:\n    print(n)",
                         ("a multiple of 15 must print FizzBuzz and not Fizz",)),
        buggy=Approach("the approach is to check divisibility by 3 first, then by 5, then by 15",
                       "if n % 3 == 0:\n    print('Fizz')\nelif n % 5 == 0:\n    print('Buzz')\nelif n % 15 == 0:\n    print('FizzBuzz')\nelse:\n    print(n)",
                       ("a number that is not a multiple prints itself",)),
        examples=("for 9 the answer is Fizz", "for 10 the answer is Buzz"),
        random_input=_random_int,
        bug_catcher=_multiple_of_15,
    ),
    Family(
        name="sort_list",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print them sorted in increasing order, separated by spaces.",
            "Given {things} on one line, output the same values from smallest to largest.",
            "Sort the {things} on the input line in ascending numeric order and print them on one line.",
        ),
        tasks=("the input is one line of integers and the answer is the same numbers in increasing order",
               "the task is to sort the numbers from smallest to largest"),
        correct=Approach("the approach is to sort the numbers as integers with sorted",
                         "print(*sorted(nums))", ("10 comes after 9 because the order is numeric",)),
        buggy=Approach("the approach is to sort the numbers as text with sorted",
                       "print(*sorted(str(x) for x in nums))", ("equal numbers stay next to each other",)),
        examples=("for 3 1 2 the answer is 1 2 3", "for 10 -4 9 the answer is -4 9 10"),
        random_input=_random_ints,
        bug_catcher=_string_order_differs,
    ),
    Family(
        name="running_sums",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print the running totals: the i-th output is the sum of the first i values.",
            "Given {things} on one line, output the prefix sums on one line.",
            "For the {things} on the input line print the cumulative sums, separated by spaces.",
        ),
        tasks=("the input is one line of integers and the answer is the list of running totals",
               "the task is to print each prefix sum of the line"),
        correct=Approach("the approach is to add each number to the total and then record the total",
                         "total = 0\nout = []\nfor x in nums:\n    total += x\n    out.append(total)\nprint(*out)",
                         ("the first output is the first number itself",)),
        buggy=Approach("the approach is to record the total and then add each number to it",
                       "total = 0\nout = []\nfor x in nums:\n    out.append(total)\n    total += x\nprint(*out)",
                       ("there is one output per input number",)),
        examples=("for 1 2 3 the answer is 1 3 6", "for 5 -2 the answer is 5 3"),
        random_input=_random_ints,
        bug_catcher=_first_nonzero,
    ),
    Family(
        name="palindrome",
        input_kind="word",
        wordings=(
            "Read {things} (lowercase letters) and print YES if it reads the same forwards and backwards, otherwise NO.",
            "Given {things}, output YES when it is a palindrome and NO when it is not.",
            "Decide whether {things} is a palindrome. Print YES or NO.",
        ),
        tasks=("the input is one word and the answer is YES when it is a palindrome",
               "the task is to test whether the word reads the same backwards"),
        correct=Approach("the approach is to compare the whole word with its reverse",
                         "print('YES' if s == s[::-1] else 'NO')", ("matching first and last letters are not enough",)),
        buggy=Approach("the approach is to compare the first letter with the last letter",
                       "print('YES' if s[0] == s[-1] else 'NO')", ("a single letter is a palindrome",)),
        examples=("for level the answer is YES", "for abca the answer is NO"),
        random_input=_random_word,
        bug_catcher=_same_ends_not_palindrome,
    ),
    Family(
        name="count_evens",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print how many of the values are even.",
            "Given {things} on one line, count the even numbers and print the count.",
            "How many of the {things} on the input line are divisible by 2? Print that number.",
        ),
        tasks=("the input is one line of integers and the answer is how many values are even",
               "the task is to count the even numbers on the line"),
        correct=Approach("the approach is to count the values x with x % 2 == 0",
                         "print(sum(1 for x in nums if x % 2 == 0))", ("zero and negative even numbers count too",)),
        buggy=Approach("the approach is to count the positions i with i % 2 == 0",
                       "print(sum(1 for i in range(len(nums)) if i % 2 == 0))", ("an empty count is 0",)),
        examples=("for 3 4 6 the answer is 2", "for 1 3 5 the answer is 0"),
        random_input=_random_ints,
        bug_catcher=_all_odd,
    ),
    Family(
        name="product",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (small integers) and print the product of all of them.",
            "Given {things} on one line, output the result of multiplying them together.",
            "Multiply all the {things} on the input line and print the product.",
        ),
        tasks=("the input is one line of integers and the answer is their product",
               "the task is to multiply every number on the line"),
        correct=Approach("the approach is to start the product at 1 and multiply by each number",
                         "p = 1\nfor x in nums:\n    p *= x\nprint(p)", ("a zero anywhere makes the product zero",)),
        buggy=Approach("the approach is to start the product at 0 and multiply by each number",
                       "p = 0\nfor x in nums:\n    p *= x\nprint(p)", ("negative numbers flip the sign",)),
        examples=("for 2 3 4 the answer is 24", "for -1 5 the answer is -5"),
        random_input=_product_ints,
        bug_catcher=_product_no_zero,
    ),
    Family(
        name="abs_difference",
        input_kind="pair",
        wordings=(
            "Read {things} from one line and print the absolute value of their difference.",
            "Given {things} on a line, output how far apart they are (a non-negative number).",
            "Print the distance between {things} given on the input line.",
        ),
        tasks=("the input is two integers and the answer is the absolute difference",
               "the task is to find how far apart the two numbers are"),
        correct=Approach("the approach is to take abs of a minus b",
                         "print(abs(a - b))", ("the answer is never negative",)),
        buggy=Approach("the approach is to take a minus b",
                       "print(a - b)", ("equal numbers give 0",)),
        examples=("for 3 8 the answer is 5", "for 10 4 the answer is 6"),
        random_input=_signed_pair,
        bug_catcher=_ascending_pair,
    ),
    Family(
        name="count_distinct",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print how many different values appear.",
            "Given {things} on one line, output the number of distinct values.",
            "Count the distinct values among the {things} on the input line and print the count.",
        ),
        tasks=("the input is one line of integers and the answer is the number of different values",
               "the task is to count the distinct numbers on the line"),
        correct=Approach("the approach is to put the numbers in a set and take its size",
                         "print(len(set(nums)))", ("a repeated value is counted once",)),
        buggy=Approach("the approach is to count the numbers that appear exactly once",
                       "print(sum(1 for x in nums if nums.count(x) == 1))", ("the count is at most the length",)),
        examples=("for 3 3 2 the answer is 2", "for 1 2 3 the answer is 3"),
        random_input=_random_ints,
        bug_catcher=_with_duplicate,
    ),
    Family(
        name="range_span",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print the difference between the largest and the smallest.",
            "Given {things} on one line, output the range: maximum minus minimum.",
            "Print how far the biggest of the {things} on the input line is from the smallest.",
        ),
        tasks=("the input is one line of integers and the answer is the maximum minus the minimum",
               "the task is to find the spread of the numbers"),
        correct=Approach("the approach is to subtract min of the list from max of the list",
                         "print(max(nums) - min(nums))", ("the numbers are not sorted",)),
        buggy=Approach("the approach is to subtract the first number from the last number",
                       "print(nums[-1] - nums[0])", ("equal numbers give 0",)),
        examples=("for 3 9 2 the answer is 7", "for 5 5 the answer is 0"),
        random_input=_random_ints,
        bug_catcher=_ends_not_extremes,
    ),
    Family(
        name="word_count",
        input_kind="text",
        wordings=(
            "Read {things} (words separated by single spaces) and print how many words it has.",
            "Given {things} on one line, output the number of words.",
            "Count the words in {things} and print the count.",
        ),
        tasks=("the input is one line of text and the answer is the number of words",
               "the task is to count the words on the line"),
        correct=Approach("the approach is to split the line on spaces and take the length",
                         "print(len(s.split()))", ("one word without spaces gives 1",)),
        buggy=Approach("the approach is to count the spaces in the line",
                       "print(s.count(' '))", ("words are separated by single spaces",)),
        examples=("for blue sky the answer is 2", "for moon the answer is 1"),
        random_input=_text,
        bug_catcher=_text,
    ),
    Family(
        name="first_max_index",
        input_kind="ints",
        wordings=(
            "Read a line of {things} (integers) and print the position, counting from 0, of the first occurrence of the largest value.",
            "Given {things} on one line, output the 0-based index where the maximum first appears.",
            "Find the largest of the {things} on the input line and print the index (from 0) of its first occurrence.",
        ),
        tasks=("the input is one line of integers and the answer is the index of the first maximum",
               "the task is to find where the largest value first appears"),
        correct=Approach("the approach is to keep the best index and move it only when a value is strictly larger",
                         "best = 0\nfor i in range(len(nums)):\n    if nums[i] > nums[best]:\n        best = i\nprint(best)",
                         ("a repeated maximum keeps its first index",)),
        buggy=Approach("the approach is to keep the best index and move it when a value is larger or equal",
                       "best = 0\nfor i in range(len(nums)):\n    if nums[i] >= nums[best]:\n        best = i\nprint(best)",
                       ("indices start at 0",)),
        examples=("for 3 7 2 the answer is 1", "for 5 5 1 the answer is 0"),
        random_input=_random_ints,
        bug_catcher=_duplicated_max,
    ),
)

FAMILY_BY_NAME: dict[str, Family] = {family.name: family for family in FAMILIES}

# Families on which the student systematically writes the buggy approach (note 2 of the prototype).
STUDENT_WEAK_FAMILIES: tuple[str, ...] = (
    "second_largest", "reverse_string", "count_vowels", "gcd", "is_prime", "fizzbuzz",
    "sort_list", "running_sums", "palindrome", "count_evens", "count_distinct", "range_span",
)
