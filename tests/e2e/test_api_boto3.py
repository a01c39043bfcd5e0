"""The MWAA API through the real boto3 `mwaa` client against a live server."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.conftest import wait_for_status, wait_gone


def _error(excinfo: pytest.ExceptionInfo) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_create_get_update_delete_round_trip(params, mwaa, env_name):
    arn = mwaa.create_environment(Name=env_name, **params(Tags={"team": "a"}))["Arn"]
    assert arn == f"arn:aws:airflow:us-east-1:123456789012:environment/{env_name}"
    env = wait_for_status(mwaa, env_name, {"AVAILABLE"})
    assert env["Arn"] == arn
    assert isinstance(env["CreatedAt"], dt.datetime)
    assert env["Tags"] == {"team": "a"}
    assert env["WebserverUrl"].startswith("https://")
    assert env["LastUpdate"]["Status"] == "SUCCESS"

    mwaa.update_environment(
        Name=env_name, MaxWorkers=4, AirflowConfigurationOptions={"core.parallelism": "64"}
    )
    env = wait_for_status(mwaa, env_name, {"AVAILABLE"})
    assert env["MaxWorkers"] == 4
    assert env["AirflowConfigurationOptions"] == {"core.parallelism": "64"}

    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)
    assert env_name not in mwaa.list_environments()["Environments"]


def test_defaults_are_filled_in(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    env = mwaa.get_environment(Name=env_name)["Environment"]
    assert env["AirflowVersion"] == "3.0.6"
    assert env["EnvironmentClass"] == "mw1.small"
    assert (env["MinWorkers"], env["MaxWorkers"]) == (1, 10)
    assert env["Schedulers"] == 2
    assert (env["MinWebservers"], env["MaxWebservers"]) == (2, 2)
    assert env["WebserverAccessMode"] == "PRIVATE_ONLY"
    assert env["EndpointManagement"] == "SERVICE"
    assert env["LoggingConfiguration"]["TaskLogs"]["Enabled"] is True
    assert env["LoggingConfiguration"]["SchedulerLogs"]["Enabled"] is False
    assert env["ServiceRoleArn"].endswith("AWSServiceRoleForAmazonMWAA")


def test_micro_class_defaults(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params(EnvironmentClass="mw1.micro"))
    env = mwaa.get_environment(Name=env_name)["Environment"]
    assert (env["Schedulers"], env["MinWebservers"], env["MaxWebservers"], env["MaxWorkers"]) == (
        1,
        1,
        1,
        1,
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"Name": "1bad"}, "'Name'"),
        (
            {
                "NetworkConfiguration": {
                    "SubnetIds": ["subnet-1", "subnet-2", "subnet-3"],
                    "SecurityGroupIds": ["sg-1"],
                }
            },
            "SubnetIds",
        ),
        ({"Schedulers": 9}, "Schedulers"),
        ({"Schedulers": 0}, "Schedulers"),
        ({"Tags": {}}, "Tags"),
        ({"MinWorkers": 5, "MaxWorkers": 2}, "MinWorkers"),
        ({"MaxWorkers": 26}, "MaxWorkers"),
        ({"AirflowVersion": "1.10.12"}, "AirflowVersion"),
        ({"EnvironmentClass": "mw1.huge"}, "EnvironmentClass"),
        ({"AirflowConfigurationOptions": {"core.executor": "LocalExecutor"}}, "core.executor"),
        ({"AirflowConfigurationOptions": {"nosection": "1"}}, "nosection"),
        (
            {"AirflowConfigurationOptions": {"celery.celery_config_options": "x.Y"}},
            "celery.celery_config_options",
        ),
        ({"AirflowConfigurationOptions": {"api.port": "80"}}, "api.port"),
        ({"WeeklyMaintenanceWindowStart": "MON:25:00"}, "WeeklyMaintenanceWindowStart"),
        ({"WebserverAccessMode": "EVERYONE"}, "WebserverAccessMode"),
        ({"KmsKey": "alias/mine"}, "KmsKey"),
        ({"ExecutionRoleArn": "arn:aws:iam::123:role/x"}, "ExecutionRoleArn"),
        ({"Tags": {"aws:owner": "me"}}, "aws:"),
        ({"PluginsS3ObjectVersion": "v1"}, "PluginsS3Path"),
        ({"DagS3Path": "../escape"}, "DagS3Path"),
        ({"MinWebservers": 4, "MaxWebservers": 3}, "MinWebservers"),
    ],
)
def test_create_rejects_invalid_input_and_stores_nothing(params, mwaa, env_name, overrides, needle):
    params = params(**overrides)
    name = params.pop("Name", env_name)
    with pytest.raises(ClientError) as excinfo:
        mwaa.create_environment(Name=name, **params)
    code, message, status = _error(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert needle in message
    if name == env_name:
        with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
            mwaa.get_environment(Name=name)


def test_duplicate_name_is_refused(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    with pytest.raises(mwaa.exceptions.ValidationException, match="already exists"):
        mwaa.create_environment(Name=env_name, **params(MaxWorkers=3))
    assert mwaa.get_environment(Name=env_name)["Environment"]["MaxWorkers"] == 10


def test_client_side_validation_still_applies(params, mwaa, env_name):
    with pytest.raises(ParamValidationError):
        mwaa.create_environment(Name=env_name, **params(MaxWorkers=0))


def test_update_rules(server, params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    with pytest.raises(mwaa.exceptions.ValidationException, match="major"):
        mwaa.update_environment(Name=env_name, AirflowVersion="2.10.3")
    with pytest.raises(mwaa.exceptions.ValidationException, match="MinWorkers"):
        mwaa.update_environment(Name=env_name, MinWorkers=8, MaxWorkers=2)
    assert mwaa.get_environment(Name=env_name)["Environment"]["Status"] == "AVAILABLE"
    original = params()["NetworkConfiguration"]
    mwaa.update_environment(Name=env_name, NetworkConfiguration={"SecurityGroupIds": ["sg-0gone"]})
    failed = wait_for_status(mwaa, env_name, {"UPDATE_FAILED"})
    assert failed["NetworkConfiguration"] == original  # the last good configuration is back
    assert "sg-0gone" in failed["LastUpdate"]["Error"]["ErrorMessage"]
    assert failed["LastUpdate"]["Status"] == "FAILED"

    ec2 = server.aws("ec2")
    vpc = ec2.describe_subnets(SubnetIds=original["SubnetIds"])["Subnets"][0]["VpcId"]
    group = ec2.create_security_group(GroupName=env_name, Description="new", VpcId=vpc)["GroupId"]
    mwaa.update_environment(
        Name=env_name,
        NetworkConfiguration={"SecurityGroupIds": [group]},
        LoggingConfiguration={"SchedulerLogs": {"Enabled": True, "LogLevel": "WARNING"}},
        WorkerReplacementStrategy="GRACEFUL",
    )
    env = wait_for_status(mwaa, env_name, {"AVAILABLE"})
    assert env["NetworkConfiguration"] == {
        "SubnetIds": original["SubnetIds"],
        "SecurityGroupIds": [group],
    }
    assert env["LoggingConfiguration"]["SchedulerLogs"]["LogLevel"] == "WARNING"
    assert env["LoggingConfiguration"]["TaskLogs"]["Enabled"] is True
    assert env["LastUpdate"]["WorkerReplacementStrategy"] == "GRACEFUL"


def test_missing_environment_is_not_found_everywhere(mwaa):
    for call in (
        lambda: mwaa.get_environment(Name="nope"),
        lambda: mwaa.update_environment(Name="nope", MaxWorkers=2),
        lambda: mwaa.delete_environment(Name="nope"),
        lambda: mwaa.create_cli_token(Name="nope"),
        lambda: mwaa.create_web_login_token(Name="nope"),
        lambda: mwaa.invoke_rest_api(Name="nope", Path="/dags", Method="GET"),
    ):
        with pytest.raises(mwaa.exceptions.ResourceNotFoundException) as excinfo:
            call()
        assert _error(excinfo)[2] == 404


def test_pagination_walks_every_environment_once(params, mwaa):
    names = {f"page-{i:02d}" for i in range(7)}
    for name in names:
        mwaa.create_environment(Name=name, **params())
    seen: list[str] = []
    for page in mwaa.get_paginator("list_environments").paginate(PaginationConfig={"PageSize": 3}):
        assert len(page["Environments"]) <= 3
        seen.extend(page["Environments"])
    assert len(seen) == len(set(seen))
    assert names <= set(seen)
    first = mwaa.list_environments(MaxResults=1)
    assert "NextToken" in first


@pytest.mark.parametrize("token", ["forged", "AAAA" * 10, "eyJhIjoiYiJ9"])
def test_forged_next_token_is_refused(mwaa, token):
    with pytest.raises(mwaa.exceptions.ValidationException, match="NextToken"):
        mwaa.list_environments(NextToken=token)


def test_max_results_bounds(mwaa):
    with pytest.raises(mwaa.exceptions.ValidationException, match="MaxResults"):
        mwaa.list_environments(MaxResults=26)


def test_tags_with_percent_encoded_arn(params, mwaa, env_name):
    arn = mwaa.create_environment(Name=env_name, **params(Tags={"team": "a"}))["Arn"]
    mwaa.tag_resource(ResourceArn=arn, Tags={"cost": "42", "owner": "ops@example.com"})
    assert mwaa.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "team": "a",
        "cost": "42",
        "owner": "ops@example.com",
    }
    mwaa.untag_resource(ResourceArn=arn, tagKeys=["cost", "absent"])
    assert mwaa.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "team": "a",
        "owner": "ops@example.com",
    }
    assert mwaa.get_environment(Name=env_name)["Environment"]["Tags"]["owner"] == "ops@example.com"
    with pytest.raises(mwaa.exceptions.ValidationException, match="aws:"):
        mwaa.tag_resource(ResourceArn=arn, Tags={"aws:x": "y"})
    with pytest.raises(mwaa.exceptions.ValidationException, match="at most 50"):
        mwaa.tag_resource(ResourceArn=arn, Tags={f"k{i}": "v" for i in range(49)})
    missing = arn.replace(env_name, "nope")
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
        mwaa.list_tags_for_resource(ResourceArn=missing)
    other_region = arn.replace("us-east-1", "eu-west-1")
    with pytest.raises(mwaa.exceptions.ResourceNotFoundException):
        mwaa.tag_resource(ResourceArn=other_region, Tags={"a": "b"})
    assert quote(arn, safe="") != arn  # the ARN travels percent-encoded, '/' included


def test_tokens_and_rest_api(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    cli = mwaa.create_cli_token(Name=env_name)
    web = mwaa.create_web_login_token(Name=env_name)
    again = mwaa.create_cli_token(Name=env_name)
    assert len(cli["CliToken"]) >= 43 and cli["CliToken"] != again["CliToken"]
    assert cli["WebServerHostname"] == web["WebServerHostname"]
    assert web["IamIdentity"] and web["AirflowIdentity"] and web["WebToken"]
    with pytest.raises(mwaa.exceptions.RestApiServerException) as excinfo:
        mwaa.invoke_rest_api(Name=env_name, Path="/dags", Method="GET")
    response = excinfo.value.response
    assert response["RestApiStatusCode"] == 503
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(mwaa.exceptions.ValidationException, match="Method"):
        mwaa.invoke_rest_api(Name=env_name, Path="/dags", Method="HEAD")


def test_tokens_need_a_running_environment(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params(SourceBucketArn="arn:aws:s3:::never-made"))
    wait_for_status(mwaa, env_name, {"CREATE_FAILED"})
    for call in (
        lambda: mwaa.create_cli_token(Name=env_name),
        lambda: mwaa.create_web_login_token(Name=env_name),
        lambda: mwaa.invoke_rest_api(Name=env_name, Path="/dags", Method="GET"),
    ):
        with pytest.raises(mwaa.exceptions.ValidationException, match="not available"):
            call()


def test_publish_metrics_is_deprecated(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    with pytest.raises(mwaa.exceptions.ValidationException, match="deprecated"):
        mwaa.publish_metrics(
            EnvironmentName=env_name,
            MetricData=[{"MetricName": "m", "Timestamp": dt.datetime.now(dt.UTC), "Value": 1.0}],
        )


def test_delete_twice_and_delete_while_deleting(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params())
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    mwaa.delete_environment(Name=env_name)
    try:
        mwaa.delete_environment(Name=env_name)
    except mwaa.exceptions.ValidationException as err:
        assert "DELETING" in str(err)
    except mwaa.exceptions.ResourceNotFoundException:
        pass  # the first delete already finished
    wait_gone(mwaa, env_name)
