"""Every case of the reference IAM test vectors must produce its expected decision."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iam.cases import decide_case, load_cases, simulate

from .conftest import CASES_PATH


def _load() -> list[Any]:
    cases = json.loads(CASES_PATH.read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["id"]) for case in cases]


@pytest.mark.parametrize("case", _load())
def test_vector(case: dict[str, Any]) -> None:
    # Cases marked "unsure" are held to their expected value too.
    assert decide_case(case).value == case["expected"], case.get("note", "")


def test_vector_file_is_complete(cases_path) -> None:
    cases = load_cases(cases_path)
    assert len(cases) == 136
    assert len({c["id"] for c in cases}) == len(cases)


def test_simulate_yields_id_and_decision(cases_path) -> None:
    cases = load_cases(cases_path)[:3]
    out = list(simulate(cases))
    assert [o["id"] for o in out] == [c["id"] for c in cases]
    assert all(o["decision"] in ("Allow", "ExplicitDeny", "ImplicitDeny") for o in out)
    json.dumps(out)
