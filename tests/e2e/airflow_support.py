"""What the end-to-end tests that run a real Airflow share."""

from __future__ import annotations

import json

from tests.conftest import LiveServer, make_prerequisites


def runtime_policy(bucket: str) -> str:
    """What MWAA's documented execution-role policy lets Airflow do, for these tests: the Celery
    queue, the environment's log groups (remote task logs) and the DAG bucket, which the
    probe task also writes to."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["sqs:*"],
                    "Resource": "arn:aws:sqs:us-east-1:*:airflow-celery-*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["logs:*"],
                    "Resource": "arn:aws:logs:us-east-1:*:log-group:airflow-*",
                },
                {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject*", "s3:PutObject", "s3:List*", "s3:GetBucket*"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                },
            ],
        }
    )


def prerequisites_for_airflow(live: LiveServer, tag: str) -> dict:
    params = make_prerequisites(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    live.aws("iam").put_role_policy(
        RoleName=params["ExecutionRoleArn"].rsplit("/", 1)[1],
        PolicyName="airflow-runtime",
        PolicyDocument=runtime_policy(bucket),
    )
    return params
