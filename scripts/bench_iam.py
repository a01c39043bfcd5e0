"""Benchmark the IAM policy engine: decisions per second on one core.

Builds a principal with 10 policies of 10 statements each (conditions with ABAC tag
variables, IP ranges, dates and StringLike; resources with variables), then times a mix of
requests that end in Allow, ExplicitDeny and ImplicitDeny. Rows:

  authorize()          the server path: context merge, Request, evaluate
  evaluate() prebuilt  evaluation alone, on requests built ahead of time
  no action index      the same compiled statements without the per-action statement index
  naive (parse each)   the baseline: parse the 10 policy documents for every decision

Each row is measured in the same run, 5 rounds, median reported with the ratio to the baseline.
The process is pinned to one CPU where the platform allows it.

    .venv/bin/python scripts/bench_iam.py [--rounds 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import benchlib

from iam.authorize import authorize, build_request
from iam.evaluate import Decision, evaluate
from iam.identities import Principal
from iam.policy import Policy, parse_policy
from iam.request import global_context

ACCOUNT = "111122223333"
ENV = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment"
AIRFLOW_ACTIONS = [
    "airflow:GetEnvironment",
    "airflow:UpdateEnvironment",
    "airflow:CreateCliToken",
    "airflow:CreateWebLoginToken",
    "airflow:ListTagsForResource",
    "airflow:TagResource",
    "airflow:UntagResource",
    "airflow:DeleteEnvironment",
]


def statement(p: int, s: int) -> dict[str, Any]:
    """Statement ``s`` of policy ``p``: a rotating mix of realistic shapes."""
    kind = (p * 10 + s) % 10
    actions = [AIRFLOW_ACTIONS[(p + s) % 8], AIRFLOW_ACTIONS[(p + 2 * s + 1) % 8]]
    if kind == 0:  # team ABAC
        return {
            "Sid": f"Abac{p}x{s}",
            "Effect": "Allow",
            "Action": actions,
            "Resource": f"arn:aws:airflow:*:{ACCOUNT}:environment/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
        }
    if kind == 1:  # office network and a validity window
        return {
            "Effect": "Allow",
            "Action": actions,
            "Resource": f"{ENV}/team-{p}-*",
            "Condition": {
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.0/24"]},
                "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"},
            },
        }
    if kind == 2:  # environments named after the caller's team
        return {
            "Effect": "Allow",
            "Action": "airflow:Get*",
            "Resource": f"{ENV}/${{aws:PrincipalTag/team}}-{s}-*",
        }
    if kind == 3:  # protect production
        return {
            "Effect": "Deny",
            "Action": ["airflow:DeleteEnvironment", "airflow:UpdateEnvironment"],
            "Resource": "*",
            "Condition": {"StringLike": {"aws:ResourceTag/stage": f"prod*{p}"}},
        }
    if kind == 4:  # tagging only with allowed keys
        return {
            "Effect": "Allow",
            "Action": "airflow:TagResource",
            "Resource": f"arn:aws:airflow:*:{ACCOUNT}:environment/*",
            "Condition": {
                "StringEquals": {"aws:RequestTag/team": "${aws:PrincipalTag/team}"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost-center"]},
            },
        }
    if kind == 5:  # pass the execution role to MWAA only
        return {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"arn:aws:iam::{ACCOUNT}:role/service-role/MWAA-Execution-*",
            "Condition": {"StringLike": {"iam:PassedToService": "airflow.amazonaws.com"}},
        }
    if kind == 6:  # per-user S3 prefix
        return {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::dags-{p}/home/${{aws:username}}/*",
        }
    if kind == 7:  # deny outside the network unless via a service
        return {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.113.0/24"]},
                "Bool": {"aws:ViaAWSService": "false"},
            },
        }
    if kind == 8:  # list everything
        return {"Effect": "Allow", "Action": "airflow:ListEnvironments", "Resource": "*"}
    return {  # web login as Viewer/User in team environments
        "Effect": "Allow",
        "Action": "airflow:CreateWebLoginToken",
        "Resource": [
            f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/team-{p}-*/Viewer",
            f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/team-{p}-*/User",
        ],
        "Condition": {"StringLike": {"aws:PrincipalTag/team": "team-*"}},
    }


def policy_documents() -> list[dict[str, Any]]:
    return [
        {"Version": "2012-10-17", "Statement": [statement(p, s) for s in range(10)]}
        for p in range(10)
    ]


class UnindexedPolicy(Policy):
    """The same compiled statements, but without the per-action index: every decision scans
    every statement's Action first. Shows what the index contributes."""

    __slots__ = ()

    def rules_for(self, action_key: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        relevant = [s for s in self.compiled if s.covers_action(action_key)]
        return tuple(s for s in relevant if not s.allow), tuple(s for s in relevant if s.allow)


def make_principal(docs: list[dict[str, Any]]) -> Principal:
    return Principal(
        arn=f"arn:aws:iam::{ACCOUNT}:user/tina",
        type="User",
        account=ACCOUNT,
        name="tina",
        user_id="AIDATINAXXXXXXXXXXXXX",
        tags={"team": "team-a", "cost-center": "42"},
        identity_policies=tuple(parse_policy(d, name=f"p{i}") for i, d in enumerate(docs)),
    )


def request_mix() -> list[tuple[str, str, dict[str, Any]]]:
    base = global_context(
        now=dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC),
        source_ip="203.0.113.10",
        region="us-east-1",
    )
    base["aws:ViaAWSService"] = "false"
    own = {**base, "aws:ResourceTag/team": "team-a"}
    return [
        ("airflow:GetEnvironment", f"{ENV}/team-a-etl", own),
        ("airflow:CreateCliToken", f"{ENV}/team-a-etl", own),
        ("airflow:ListEnvironments", "*", base),
        ("airflow:GetEnvironment", f"{ENV}/team-b-etl", {**base, "aws:ResourceTag/team": "team-b"}),
        (
            "airflow:DeleteEnvironment",
            f"{ENV}/team-a-prod",
            {**own, "aws:ResourceTag/stage": "prod-3"},
        ),
        ("airflow:UpdateEnvironment", f"{ENV}/team-a-etl", {**own, "aws:SourceIp": "198.51.100.7"}),
        (
            "airflow:TagResource",
            f"{ENV}/team-a-etl",
            {**own, "aws:RequestTag/team": "team-a", "aws:TagKeys": ["team"]},
        ),
        (
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/service-role/MWAA-Execution-a",
            {**base, "iam:PassedToService": "airflow.amazonaws.com"},
        ),
        ("s3:GetObject", "arn:aws:s3:::dags-6/home/tina/dag.py", base),
        ("s3:GetObject", "arn:aws:s3:::dags-6/home/bob/dag.py", base),
        (
            "airflow:CreateWebLoginToken",
            f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/team-1-x/Viewer",
            base,
        ),
        ("airflow:PublishMetrics", f"{ENV}/team-a-etl", own),
    ]


def measure(decide: Callable[[int], Decision], count: int, seconds: float) -> float:
    """Decisions per second: run ``decide`` over the mix until ``seconds`` have passed."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(count):
            decide(i)
        done += count
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    docs = policy_documents()
    principal = make_principal(docs)
    mix = request_mix()

    def engine(i: int) -> Decision:
        action, resource, context = mix[i]
        return authorize(principal, action, resource, context)

    def engine_prebuilt(i: int) -> Decision:
        return evaluate(prebuilt[i], identity=principal.identity_policies)

    unindexed = [
        UnindexedPolicy(p.statements, version=p.version, kind=p.kind)
        for p in principal.identity_policies
    ]

    def no_index(i: int) -> Decision:
        return evaluate(prebuilt[i], identity=unindexed)

    def naive(i: int) -> Decision:
        action, resource, context = mix[i]
        policies = [parse_policy(d) for d in docs]  # what a server storing JSON would do
        return evaluate(build_request(principal, action, resource, context), identity=policies)

    prebuilt = [build_request(principal, a, r, c) for a, r, c in mix]
    outcomes = [engine(i) for i in range(len(mix))]
    for other in (engine_prebuilt, no_index, naive):
        if [other(i) for i in range(len(mix))] != outcomes:
            raise SystemExit(f"{other.__name__} disagrees with authorize()")
    counts = {d.value: sum(o is d for o in outcomes) for d in Decision}

    variants: dict[str, tuple[Callable[[int], Decision], float]] = {
        "authorize()": (engine, args.seconds),
        "evaluate() prebuilt": (engine_prebuilt, args.seconds),
        "no action index": (no_index, args.seconds),
        "naive (parse each)": (naive, args.seconds / 4),
    }
    rows: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (decide, seconds) in variants.items():
            rows[name].append(measure(decide, len(mix), seconds))

    baseline = statistics.median(rows["naive (parse each)"])
    table = []
    for name, values in rows.items():
        median = statistics.median(values)
        table.append(
            [
                name,
                f"{median:,.0f}",
                f"{min(values):,.0f}",
                f"{max(values):,.0f}",
                f"{median / baseline:.1f}x",
            ]
        )
    benchlib.print_table(
        f"IAM decisions/s on one core, median of {args.rounds} rounds "
        f"({benchlib.machine_line()}); 10 policies x 10 statements; mix of {len(mix)} requests "
        f"({', '.join(f'{k}={v}' for k, v in counts.items())})",
        ["variant", "median/s", "min/s", "max/s", "vs naive"],
        table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
