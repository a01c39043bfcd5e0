"""What the end-to-end tests that run a real Airflow share."""

from __future__ import annotations

import json

from tests.conftest import LiveServer, make_prerequisites


def results_policy(bucket: str) -> str:
    """The probe DAGs write their result to the bucket as the execution role: a grant beyond
    MWAA's documented policy (which make_prerequisites gives), as a user adds for such tasks."""
    resource = f"arn:aws:s3:::{bucket}/*"
    statement = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def prerequisites_for_airflow(live: LiveServer, tag: str) -> dict:
    params = make_prerequisites(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    live.aws("iam").put_role_policy(
        RoleName=params["ExecutionRoleArn"].rsplit("/", 1)[1],
        PolicyName="write-results",
        PolicyDocument=results_policy(bucket),
    )
    return params


def embedded_admin_url(data_dir) -> str:
    """The superuser's URL of the embedded PostgreSQL that a live server started."""
    root = data_dir / "postgres"
    password = (root / "superuser").read_text().strip()
    port = (root / "port").read_text().strip()
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
