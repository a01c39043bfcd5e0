"""What the end-to-end tests that run a real Airflow share."""

from __future__ import annotations

import json

import boto3
from botocore.config import Config

from tests.conftest import LiveServer, make_prerequisites
from tests.e2e.iam_support import REGION


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


# A user of the shared server's IAM config, as infra/iam-example.yaml's auditors: it may read
# environments and open the Airflow UI as Viewer, nothing more. It signs in the way any MWAA
# user does, through CreateWebLoginToken. (The bootstrap admin keeps full access.)
VIEWER_KEY = ("AKIATESTVIEWER000000", "viewer-secret-" + "x" * 26)
VIEWER_CONFIG = {
    "account_id": "123456789012",
    "policies": {
        "ReadOnly": "file://policies/read-only.json",
        "WebServerViewer": "file://policies/web-server-viewer.json",
    },
    "users": {
        "viewer": {
            "policies": ["ReadOnly", "WebServerViewer"],
            "access_keys": [{"access_key_id": VIEWER_KEY[0], "secret_access_key": VIEWER_KEY[1]}],
        }
    },
}


def viewer_mwaa(live: LiveServer):
    """boto3's `mwaa` client as the shared server's Viewer-only user."""
    return boto3.client(
        "mwaa",
        endpoint_url=live.url,
        region_name=REGION,
        aws_access_key_id=VIEWER_KEY[0],
        aws_secret_access_key=VIEWER_KEY[1],
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )
