"""The metrics sidecar against the embedded AWS: what Airflow sends over statsd lands in
CloudWatch as the environment's execution role, and a role without cloudwatch:PutMetricData
publishes nothing (the refusal is kept), because the control plane never uses its own rights
for an environment's metrics."""

from __future__ import annotations

import json
import uuid

from environments.airflow.metrics.hub import MetricsHub
from environments.aws.clients import AwsClients, AwsTarget
from tests.conftest import TRUST_POLICY, LiveServer


def role(live: LiveServer, name: str, actions: list[str]) -> str:
    iam = live.aws("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"][
        "Arn"
    ]
    statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
    iam.put_role_policy(
        RoleName=name,
        PolicyName="p",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    return arn


def test_metrics_are_published_as_the_execution_role_only(server: LiveServer) -> None:
    tag = uuid.uuid4().hex[:8]
    allowed = role(server, f"metrics-ok-{tag}", ["cloudwatch:PutMetricData"])
    denied = role(server, f"metrics-no-{tag}", ["s3:ListBucket"])
    access, secret = server.admin_key()
    target = AwsTarget(server.endpoints["region"], server.aws_url, access, secret)
    hub = MetricsHub(AwsClients(target, max_attempts=1), flush_seconds=3600)
    good, bad = f"good-{tag}", f"bad-{tag}"
    try:
        for name, arn in ((good, allowed), (bad, denied)):
            settings = hub.variables(name, arn, {"metrics.metrics_block_list": "dagbag"})
            prefix = settings["AIRFLOW__METRICS__STATSD_PREFIX"]
            lines = f"{prefix}.scheduler_heartbeat:1|c\n{prefix}.dagbag_size:2|g"
            assert hub.receive(name, lines.encode()) == 1  # dagbag_size is blocked
        hub.flush()
        assert hub.status(good)["published"] == 1 and hub.status(good)["last_error"] is None
        assert hub.status(bad)["published"] == 0
        assert "AccessDenied" in hub.status(bad)["last_error"]
    finally:
        hub.stop()

    cloudwatch = server.aws("cloudwatch")

    def names(environment: str) -> set[str]:
        dimensions = [{"Name": "Environment", "Value": environment}]
        metrics = cloudwatch.list_metrics(Namespace="AmazonMWAA", Dimensions=dimensions)
        return {m["MetricName"] for m in metrics["Metrics"]}

    assert names(good) == {"SchedulerHeartbeat"}
    assert names(bad) == set()
