"""The case format behind `airdock iam simulate`: principal tags, policy files, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iam.cases import CaseError, decide_case, simulate
from iam.evaluate import Decision

ACCT = "111122223333"
ENV = f"arn:aws:airflow:us-east-1:{ACCT}:environment/a-etl"
TEAM_ABAC = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "airflow:GetEnvironment",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/Team}"}},
        }
    ],
}


def abac_case(tags: Any = None, context: dict[str, Any] | None = None, **policies: Any) -> dict:
    principal: dict[str, Any] = {"arn": f"arn:aws:iam::{ACCT}:user/alice", "account": ACCT}
    if tags is not None:
        principal["tags"] = tags
    return {
        "id": "abac",
        "policies": policies or {"identity": [TEAM_ABAC]},
        "request": {
            "action": "airflow:GetEnvironment",
            "resource": ENV,
            "principal": principal,
            "context": {"aws:ResourceTag/team": "a", **(context or {})},
        },
    }


def test_principal_tags_supply_principal_tag_keys() -> None:
    # The policy spells the key "Team", the case "team": condition keys are case-insensitive.
    assert decide_case(abac_case({"team": "a"})) is Decision.ALLOW
    assert decide_case(abac_case({"team": "b"})) is Decision.IMPLICIT_DENY
    assert decide_case(abac_case()) is Decision.IMPLICIT_DENY


def test_the_context_may_repeat_a_principal_tag_but_not_contradict_it() -> None:
    same = abac_case({"team": "a"}, {"aws:PrincipalTag/TEAM": "a"})
    assert decide_case(same) is Decision.ALLOW
    with pytest.raises(CaseError, match=r"principal\.tags\.team is 'a'"):
        decide_case(abac_case({"team": "a"}, {"aws:PrincipalTag/team": "b"}))


def test_a_context_principal_tag_without_principal_tags_still_counts() -> None:
    assert decide_case(abac_case(None, {"aws:PrincipalTag/team": "a"})) is Decision.ALLOW


@pytest.mark.parametrize("tags", [["team"], {"team": 1}, "team=a"])
def test_principal_tags_must_map_strings_to_strings(tags: Any) -> None:
    with pytest.raises(CaseError, match=r"principal\.tags must map tag keys to string values"):
        decide_case(abac_case(tags))


def test_file_policies_are_read_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "abac.json").write_text(json.dumps(TEAM_ABAC))
    case = abac_case({"team": "a"}, identity="file://policies/abac.json")
    assert decide_case(case, base=tmp_path) is Decision.ALLOW
    assert list(simulate([case], base=tmp_path)) == [{"id": "abac", "decision": "Allow"}]
    with pytest.raises(CaseError, match=r"policies.identity\[0\]: cannot read"):
        decide_case(abac_case({"team": "a"}, identity=["file://policies/none.json"]), base=tmp_path)
