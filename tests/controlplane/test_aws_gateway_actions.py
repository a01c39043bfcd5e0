"""Requests to the embedded AWS -> the IAM action, resource ARN and condition keys they need
(the names of the Service Authorization Reference)."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import EnvironBuilder

from controlplane.aws_gateway.checks import Where
from controlplane.aws_gateway.rpc_actions import rpc_checks
from controlplane.aws_gateway.s3_actions import s3_checks
from controlplane.aws_gateway.wire import read_request

WHERE = Where("123456789012", "us-east-1")
SCOPE = "Credential=AKIDEXAMPLE/20260101/us-east-1/{}/aws4_request, SignedHeaders=host, "
SCOPE += "Signature=" + "0" * 64


def incoming(method: str, path: str, service: str = "s3", **kwargs):
    headers = {"Authorization": "AWS4-HMAC-SHA256 " + SCOPE.format(service)}
    headers.update(kwargs.pop("headers", {}))
    environ = EnvironBuilder(
        method=method, path=path, base_url="http://127.0.0.1:4566", headers=headers, **kwargs
    ).get_environ()
    environ["REQUEST_URI"] = path
    return read_request(environ)


def s3(method: str, path: str, **kwargs) -> list[tuple[str, str, dict]]:
    return [(c.action, c.resource, c.context) for c in s3_checks(incoming(method, path, **kwargs))]


@pytest.mark.parametrize(
    ("method", "path", "action", "resource"),
    [
        ("GET", "/b/dags/a.py", "s3:GetObject", "arn:aws:s3:::b/dags/a.py"),
        ("HEAD", "/b/dags/a.py", "s3:GetObject", "arn:aws:s3:::b/dags/a.py"),
        ("GET", "/b/dags/a.py?versionId=3", "s3:GetObjectVersion", "arn:aws:s3:::b/dags/a.py"),
        ("PUT", "/b/dags/a.py", "s3:PutObject", "arn:aws:s3:::b/dags/a.py"),
        ("DELETE", "/b/dags/a.py", "s3:DeleteObject", "arn:aws:s3:::b/dags/a.py"),
        ("POST", "/b/big?uploads", "s3:PutObject", "arn:aws:s3:::b/big"),
        ("DELETE", "/b/big?uploadId=1", "s3:AbortMultipartUpload", "arn:aws:s3:::b/big"),
        ("GET", "/b?list-type=2", "s3:ListBucket", "arn:aws:s3:::b"),
        ("HEAD", "/b", "s3:ListBucket", "arn:aws:s3:::b"),
        ("GET", "/b?versions", "s3:ListBucketVersions", "arn:aws:s3:::b"),
        ("GET", "/b?notification", "s3:GetBucketNotification", "arn:aws:s3:::b"),
        ("PUT", "/b?notification", "s3:PutBucketNotification", "arn:aws:s3:::b"),
        ("DELETE", "/b?tagging", "s3:PutBucketTagging", "arn:aws:s3:::b"),
        ("GET", "/b?versioning", "s3:GetBucketVersioning", "arn:aws:s3:::b"),
        ("GET", "/b?publicAccessBlock", "s3:GetBucketPublicAccessBlock", "arn:aws:s3:::b"),
        ("PUT", "/b?policy", "s3:PutBucketPolicy", "arn:aws:s3:::b"),
        ("PUT", "/b", "s3:CreateBucket", "arn:aws:s3:::b"),
        ("GET", "/", "s3:ListAllMyBuckets", "*"),
        ("GET", "/b?x-id=GetObject&acl", "s3:GetBucketAcl", "arn:aws:s3:::b"),
    ],
)
def test_s3_operations(method: str, path: str, action: str, resource: str):
    assert s3(method, path)[0][:2] == (action, resource)


def test_list_bucket_carries_its_condition_keys():
    [(_, _, context)] = s3("GET", "/b?list-type=2&prefix=dags%2F&delimiter=%2F&max-keys=5")
    assert context == {"s3:prefix": "dags/", "s3:delimiter": "/", "s3:max-keys": "5"}


def test_copy_also_reads_the_source():
    checks = s3("PUT", "/b/new.py", headers={"x-amz-copy-source": "/other/dags/x.py"})
    assert [c[:2] for c in checks] == [
        ("s3:PutObject", "arn:aws:s3:::b/new.py"),
        ("s3:GetObject", "arn:aws:s3:::other/dags/x.py"),
    ]


def test_delete_objects_needs_every_key():
    body = b"<Delete><Object><Key>a.py</Key></Object><Object><Key>b.py</Key>"
    body += b"<VersionId>7</VersionId></Object></Delete>"
    assert [c[:2] for c in s3("POST", "/b?delete", data=body)] == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a.py"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::b/b.py"),
    ]


def rpc(service: str, target: str | None = None, params: dict | None = None, role_path=None):
    if target:
        req = incoming(
            "POST",
            "/",
            service,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
            data=json.dumps(params or {}),
        )
    else:
        req = incoming(
            "POST",
            "/",
            service,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            data=params or {},
        )
    [check] = rpc_checks(req, WHERE, role_path or (lambda name: None))
    return check.action, check.resource, check.owner


def test_logs_groups_and_streams():
    group = "arn:aws:logs:us-east-1:123456789012:log-group:airflow-a-Task"
    assert rpc("logs", "Logs_20140328.DeleteLogGroup", {"logGroupName": "airflow-a-Task"})[:2] == (
        "logs:DeleteLogGroup",
        group,
    )
    params = {"logGroupName": "airflow-a-Task", "logStreamName": "s1"}
    assert rpc("logs", "Logs_20140328.PutLogEvents", params)[1] == group + ":log-stream:s1"


def test_sqs_queue_urls_name_the_queue_and_its_policy():
    url = "http://127.0.0.1:4566/123456789012/a-queue"
    action, resource, owner = rpc("sqs", "AmazonSQS.SendMessage", {"QueueUrl": url})
    assert (action, resource) == ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:a-queue")
    assert owner == ("sqs", resource)


def test_query_services():
    paths = {"MWAA-Execution-a": "/service-role/"}
    assert rpc(
        "iam", params={"Action": "GetRole", "RoleName": "MWAA-Execution-a"}, role_path=paths.get
    )[:2] == ("iam:GetRole", "arn:aws:iam::123456789012:role/service-role/MWAA-Execution-a")
    assert rpc("iam", params={"Action": "ListRoles"})[:2] == ("iam:ListRoles", "*")
    assert rpc("ec2", params={"Action": "DescribeVpcs"})[:2] == ("ec2:DescribeVpcs", "*")
    assert rpc("ec2", params={"Action": "DeleteVpc", "VpcId": "vpc-0123456789abcdef0"})[1] == (
        "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0123456789abcdef0"
    )
    assert rpc("cloudformation", params={"Action": "DeleteStack", "StackName": "s"})[1] == (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/s/*"
    )
    assert rpc("kms", "TrentService.DescribeKey", {"KeyId": "alias/k"})[1] == (
        "arn:aws:kms:us-east-1:123456789012:alias/k"
    )
