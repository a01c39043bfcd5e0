"""`airdock iam simulate --cases FILE`: one JSON line per case, as the policy engine decides."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT
from tests.e2e.iam_support import airdock

CASES = ROOT / "tests" / "iam" / "data" / "iam-cases.json"


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_simulate_matches_the_reference_vectors():
    done = airdock("iam", "simulate", "--cases", str(CASES))
    assert done.returncode == 0, done.stderr
    cases = json.loads(CASES.read_text())
    results = _lines(done.stdout)
    assert [r["id"] for r in results] == [c["id"] for c in cases]
    wrong = [
        (case["id"], case["expected"], result["decision"])
        for case, result in zip(cases, results, strict=True)
        if result["decision"] != case["expected"]
    ]
    assert wrong == []
    assert airdock("iam", "simulate", "--cases", str(CASES), "--check").returncode == 0


def _case(case_id: str, policy: object, expected: str = "Allow") -> dict:
    return {
        "id": case_id,
        "policies": {"identity": [policy]},
        "request": {
            "action": "airflow:GetEnvironment",
            "resource": "arn:aws:airflow:us-east-1:111122223333:environment/e",
            "principal": {"arn": "arn:aws:iam::111122223333:user/u", "account": "111122223333"},
            "context": {},
        },
        "expected": expected,
    }


def test_a_malformed_case_is_reported_and_the_rest_still_run(tmp_path: Path):
    good = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "airflow:Get*", "Resource": "*"}],
    }
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*"}]}
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([_case("bad", bad), _case("good", good), "not-a-case"]))
    done = airdock("iam", "simulate", "--cases", str(cases), check=False)
    assert done.returncode == 1
    bad_line, good_line, odd_line = _lines(done.stdout)
    assert bad_line["id"] == "bad" and "Effect" in bad_line["error"]
    assert good_line == {"id": "good", "decision": "Allow"}
    assert odd_line["id"] == "?" and "error" in odd_line

    cases.write_text(json.dumps([_case("good", good, expected="ImplicitDeny")]))
    assert airdock("iam", "simulate", "--cases", str(cases)).returncode == 0
    checked = airdock("iam", "simulate", "--cases", str(cases), "--check", check=False)
    assert checked.returncode == 1 and "expected ImplicitDeny, got Allow" in checked.stderr


def test_an_unreadable_file_is_exit_2(tmp_path: Path):
    missing = airdock("iam", "simulate", "--cases", str(tmp_path / "none.json"), check=False)
    assert missing.returncode == 2 and missing.stdout == ""
    (tmp_path / "object.json").write_text("{}")
    wrong = airdock("iam", "simulate", "--cases", str(tmp_path / "object.json"), check=False)
    assert wrong.returncode == 2


def test_the_example_file_passes_check():
    example = ROOT / "infra" / "simulate-example.json"
    done = airdock("iam", "simulate", "--cases", "infra/simulate-example.json", "--check")
    assert done.returncode == 0, done.stderr
    cases = json.loads(example.read_text())
    results = _lines(done.stdout)
    assert [r["id"] for r in results] == [c["id"] for c in cases]
    assert {r["decision"] for r in results} == {"Allow", "ImplicitDeny", "ExplicitDeny"}
    assert any(c["request"]["action"] == "iam:PassRole" for c in cases)
    # The cases rely on the team tag reaching aws:PrincipalTag/team: none spells it out.
    assert not any("aws:PrincipalTag/team" in c["request"]["context"] for c in cases)


def test_help_describes_the_case_format():
    done = airdock("iam", "simulate", "--help")
    for words in ("principal", "aws:PrincipalTag/<key>", "file://PATH", "expected", "Exit status"):
        assert words in done.stdout
