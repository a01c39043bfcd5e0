"""botocore's data, parsed once per process: one loader for every session, common files read once.

What the shared data must not change is checked against a stock botocore Session, in a process
where no client has used its model yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

from botocore.loaders import Loader

from environments.aws.clients import AwsClients, AwsTarget
from environments.plumbing import botocore_data

EQUAL_PROBE = """
import json
import botocore.session
from environments.plumbing import botocore_data
ours = botocore_data.new_session().create_client("s3", region_name="eu-west-1")
stock = botocore.session.get_session().create_client("s3", region_name="eu-west-1")
print(json.dumps({
    "model": ours.meta.service_model._service_description
    == stock.meta.service_model._service_description,
    "endpoint": ours.meta.endpoint_url == stock.meta.endpoint_url,
    "regions": all(
        botocore_data.new_session().get_available_regions("ec2", partition_name=partition)
        == botocore.session.get_session().get_available_regions("ec2", partition_name=partition)
        for partition in ("aws", "aws-cn", "aws-us-gov")
    ),
}))
"""


def test_a_shared_model_is_botocores_own() -> None:
    # In a process of its own: botocore edits a loaded S3 model as its clients use it (it
    # moves `{Bucket}` out of each request URI, once), as it always did within a session.
    result = subprocess.run(
        [sys.executable, "-c", EQUAL_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == {"model": True, "endpoint": True, "regions": True}


def test_sessions_share_one_copy_of_a_service_model() -> None:
    first = botocore_data.new_session().create_client("s3", region_name="eu-west-1")
    second = botocore_data.new_session().create_client("s3", region_name="us-east-1")
    model = first.meta.service_model._service_description
    assert model is second.meta.service_model._service_description
    assert type(model) is dict and type(model["shapes"]) is dict


def test_each_sessions_credentials_stay_its_own() -> None:
    a = AwsClients(AwsTarget("eu-west-1", "http://127.0.0.1:1", "AKIDAAAA", "secret-a"))
    b = AwsClients(AwsTarget("us-east-2", "http://127.0.0.1:1", "AKIDBBBB", "secret-b"))
    sqs_a, sqs_b = a.client("sqs"), b.client("sqs")
    assert sqs_a._request_signer._credentials.access_key == "AKIDAAAA"
    assert sqs_b._request_signer._credentials.access_key == "AKIDBBBB"
    assert (sqs_a.meta.region_name, sqs_b.meta.region_name) == ("eu-west-1", "us-east-2")
    assert sqs_a.meta.service_model._service_description is (
        sqs_b.meta.service_model._service_description
    )


def test_common_files_are_shared_by_every_loader_and_models_are_not() -> None:
    one, two = botocore_data.plain_loader(Loader()), botocore_data.plain_loader(Loader())
    assert one.load_data("endpoints") is two.load_data("endpoints")
    # A loader merges its extras into the model it read: each keeps its own.
    assert one.load_service_model("sqs", "service-2") is not two.load_service_model(
        "sqs", "service-2"
    )


FORK_PROBE = """
import json, os, sys
from environments.plumbing import botocore_data
from environments.plumbing.forking import fork_call
botocore_data.warm_up()

def child():
    opened = []
    def note(event, args):
        if event == "open" and isinstance(args[0], str) and "/botocore/data/" in args[0]:
            opened.append(args[0].split("/botocore/data/")[1])
    sys.addaudithook(note)
    botocore_data.new_session().create_client("sqs", region_name="eu-west-1")
    print(json.dumps({"held": botocore_data.common_files_read(), "opened": opened}), flush=True)
    return 0

call = fork_call(child)
sys.exit(call.wait(60))
"""


def test_files_read_before_a_fork_are_not_read_again_in_the_child() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(result.stdout)
    assert set(seen["held"]) >= {"endpoints", "partitions", "sdk-default-configuration"}
    # The child read SQS's own files, and none of the common ones.
    assert seen["opened"], "the probe saw no reads at all"
    assert all(path.startswith("sqs/") for path in seen["opened"]), seen["opened"]
