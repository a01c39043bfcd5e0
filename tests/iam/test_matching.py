"""Wildcards, actions and ARN matching."""

from __future__ import annotations

import random

import pytest

from iam.evaluate import Decision
from iam.matching import (
    ONE,
    STAR,
    compile_actions,
    compile_arn_like,
    compile_glob,
    glob_tokens,
    split_resource_pattern,
    tokens_regex,
)

from .conftest import allow, decide


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("abc", "abc", True),
        ("abc", "abcd", False),
        ("a*", "a", True),
        ("a*", "abc/def:ghi", True),
        ("*c", "abc", True),
        ("*c", "abd", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a?c", "abbc", False),
        ("*b*", "abc", True),
        ("*b*", "ac", False),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXcYb", False),
        ("*", "", True),
        ("", "", True),
        ("", "x", False),
        ("[abc]", "[abc]", True),
        ("[abc]", "a", False),
        ("file[0-9].txt", "file[0-9].txt", True),
        ("file[0-9].txt", "file1.txt", False),
        ("a.c", "abc", False),
        ("a+b", "a+b", True),
        ("(x|y)", "x", False),
        ("back\\slash", "back\\slash", True),
        ("line*end", "line\nbreak end", True),
        ("**a", "ba", True),
    ],
)
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert compile_glob(pattern)(text) is expected


def test_tokens_collapse_and_cache_key() -> None:
    assert glob_tokens("a**b?c") == ("a", STAR, "b", ONE, "c")
    assert glob_tokens("a**b") == glob_tokens("a*b")


def test_pathological_pattern_does_not_backtrack() -> None:
    pattern = "*a" * 40 + "*b"
    matcher = compile_glob(pattern)
    assert matcher("a" * 5000) is False
    assert matcher("a" * 40 + "b") is True
    assert "(?>" in tokens_regex(glob_tokens(pattern))


def test_actions_case_insensitive() -> None:
    matcher = compile_actions(["AIRFLOW:get*", "iam:PassRole"])
    assert matcher("airflow:getenvironment")
    assert matcher("iam:passrole")
    assert not matcher("airflow:listenvironments")
    assert compile_actions(["*"])("anything:atall")
    assert decide(allow("AirFlow:GetEnvironment")) is Decision.ALLOW


def test_action_question_mark() -> None:
    matcher = compile_actions(["s3:?etObject"])
    assert matcher("s3:getobject") and matcher("s3:setobject")
    assert not matcher("s3:object")


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("arn:aws:airflow:*", ("arn", "aws", "airflow", "*", "*", "*")),
        ("arn:aws:airflow:us-*", ("arn", "aws", "airflow", "us-*", "*", "*")),
        ("arn:aws:s3:::b/k:with:colons", ("arn", "aws", "s3", "", "", "b/k:with:colons")),
        ("arn:aws:s3", None),
    ],
)
def test_resource_pattern_split(pattern: str, parts: tuple[str, ...] | None) -> None:
    assert split_resource_pattern(pattern) == parts


RESOURCE_CASES = [
    # the documentation's example: '*' crosses '/' in the resource id
    (
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*",
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/1/2/test/3/o.jpg",
        True,
    ),
    (
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*",
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET//test/o.jpg",
        True,
    ),
    (
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*",
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/test/o.jpg",
        False,
    ),
    (
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*",
        "arn:aws:s3:::DOC-EXAMPLE-BUCKET/1-test/o.jpg",
        False,
    ),
    # segment wildcards stay inside their segment
    (
        "arn:aws:airflow:*:111122223333:environment/*",
        "arn:aws:airflow:eu-west-1:111122223333:environment/x",
        True,
    ),
    (
        "arn:aws:airflow:*:111122223333:environment/*",
        "arn:aws:airflow:eu-west-1:999999999999:environment/x",
        False,
    ),
    ("arn:aws:airflow:us-*:*:environment/x", "arn:aws:airflow:us-east-1:1:environment/x", True),
    ("arn:aws:airflow:us-*:*:environment/x", "arn:aws:airflow:eu-west-1:1:environment/x", False),
    # a trailing star on a short pattern runs past the remaining colons
    ("arn:aws:airflow:*", "arn:aws:airflow:us-east-1:111122223333:environment/x", True),
    ("arn:aws:airflow:*", "arn:aws:s3:::bucket", False),
    ("arn:aws:s3", "arn:aws:s3:::bucket", False),
    # case-sensitive
    (
        "arn:aws:airflow:us-east-1:111122223333:environment/Team-A",
        "arn:aws:airflow:us-east-1:111122223333:environment/team-a",
        False,
    ),
    # literal brackets
    ("arn:aws:s3:::b/[x]*", "arn:aws:s3:::b/[x]1", True),
    ("arn:aws:s3:::b/[x]*", "arn:aws:s3:::b/x1", False),
    # '*' request resource only matches the '*' pattern
    ("arn:aws:airflow:*:*:*", "*", False),
    ("*", "*", True),
    ("*", "anything", True),
]


@pytest.mark.parametrize(("pattern", "resource", "expected"), RESOURCE_CASES)
def test_resource_matching(pattern: str, resource: str, expected: bool) -> None:
    decision = decide(allow("s3:GetObject", pattern), action="s3:GetObject", resource=resource)
    assert (decision is Decision.ALLOW) is expected


def test_arn_like_is_segment_wise_but_string_like_is_not() -> None:
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/doc.txt"
    assert compile_glob(pattern)(value) is True
    assert compile_arn_like(pattern)(value) is False
    assert compile_arn_like(pattern)("arn:aws:someservice:us-east-2:111122223333:finance/a/b:c")


def test_arn_like_needs_six_parts() -> None:
    assert compile_arn_like("arn:aws:iam::*")("arn:aws:iam::1:root") is False
    assert compile_arn_like("arn:aws:iam::*:*")("not-an-arn") is False
    assert compile_arn_like("arn:aws:iam::*:role/x")("arn:aws:iam::1:role/x")


def _reference_glob(pattern: str, text: str) -> bool:
    """Textbook dynamic-programming glob, used as an oracle."""
    rows, cols = len(pattern), len(text)
    table = [[False] * (cols + 1) for _ in range(rows + 1)]
    table[0][0] = True
    for i in range(1, rows + 1):
        char = pattern[i - 1]
        table[i][0] = table[i - 1][0] and char == "*"
        for j in range(1, cols + 1):
            if char == "*":
                table[i][j] = table[i - 1][j] or table[i][j - 1]
            elif char == "?" or char == text[j - 1]:
                table[i][j] = table[i - 1][j - 1]
    return table[rows][cols]


def test_glob_agrees_with_a_reference_implementation() -> None:
    rng = random.Random(99)
    for _ in range(20_000):
        pattern = "".join(rng.choice("ab*?[") for _ in range(rng.randint(0, 7)))
        text = "".join(rng.choice("ab[") for _ in range(rng.randint(0, 8)))
        assert compile_glob(pattern)(text) is _reference_glob(pattern, text), (pattern, text)
