"""The embedded AWS reads EC2's instance-type offerings one region at a time, and answers as moto.

The embedded AWS defers the offerings (environments.emulator.moto_memory); this test process does
not, so moto here is the reference the live server's answers are compared with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from environments.emulator.moto_memory import defer_instance_type_offerings
from tests.environments.emulator.test_embedded_aws import clients_for, embedded

LOCATION_TYPES = ("region", "availability-zone", "availability-zone-id")


def offerings(ec2: Any, location_type: str) -> list[tuple[str, str, str]]:
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType=location_type
    )
    return sorted(
        (row["InstanceType"], row["Location"], row["LocationType"])
        for page in pages
        for row in page["InstanceTypeOfferings"]
    )


def test_the_embedded_aws_answers_offerings_as_moto_does(tmp_path: Path) -> None:
    served: dict[tuple[str, str], Any] = {}
    with embedded(tmp_path) as aws:
        client = clients_for(aws)
        for region in ("us-east-1", "eu-west-1"):
            ec2 = boto3.client(
                "ec2",
                endpoint_url=aws.endpoint,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for location_type in LOCATION_TYPES:
                served[region, location_type] = offerings(ec2, location_type)
        # The network checks that environments make still work beside the deferred offerings.
        assert client("ec2").describe_vpcs()["Vpcs"]
    with mock_aws():
        for region, location_type in served:
            ec2 = boto3.client("ec2", region_name=region)
            expected = offerings(ec2, location_type)
            assert expected, (region, location_type)
            assert served[region, location_type] == expected, (region, location_type)


PROBE = """
import json
from environments.emulator.moto_memory import defer_instance_type_offerings
defer_instance_type_offerings()
from moto.backends import get_backend
import moto.ec2.models.instance_types as types

backend = get_backend("ec2")["123456789012"]["eu-west-1"]
before = {kind: regions.loaded() for kind, regions in types.INSTANCE_TYPE_OFFERINGS.items()}
rows = backend.describe_instance_type_offerings("availability-zone", {})
after = {kind: regions.loaded() for kind, regions in types.INSTANCE_TYPE_OFFERINGS.items()}
known = sorted(types.INSTANCE_TYPE_OFFERINGS["region"])
print(json.dumps({"before": before, "after": after, "rows": len(rows), "known": known}))
"""


def test_offerings_are_read_one_region_at_a_time() -> None:
    # A child of its own: in this process moto.ec2 is imported already, with every region read.
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(result.stdout)
    assert seen["before"] == {kind: [] for kind in LOCATION_TYPES}
    assert seen["after"] == {
        "region": [],
        "availability-zone": ["eu-west-1"],
        "availability-zone-id": [],
    }
    assert seen["rows"] > 0
    # Every region is still known, before its file is read.
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(seen["known"])


def test_deferring_after_moto_ec2_is_imported_is_refused() -> None:
    import moto.ec2.models.instance_types  # noqa: F401  (this process reads them all)

    with pytest.raises(RuntimeError, match="already imported"):
        defer_instance_type_offerings()


SHARED_PROBE = """
import json
from environments.emulator.moto_memory import share_service_models
share_service_models()
from moto.backends import get_backend
from moto.core.base_backend import AccountSpecificBackend
from moto.core.utils import get_service_model
from botocore.loaders import create_loader

get_backend("sqs")["123456789012"]["eu-west-1"]  # lists the regions through the Session
model = get_service_model("sqs")
listed = AccountSpecificBackend.get_session()._session.get_service_data("sqs")
# moto's extras for SQS (shapes botocore's model lacks) are in the one copy.
plain = create_loader().load_service_model("sqs", "service-2")
extras = [name for name in model.shape_names if name not in plain["shapes"]]
plain_dicts = type(listed) is dict and type(listed["shapes"]["SendMessageRequest"]) is dict
print(json.dumps({"same": listed is model._service_description, "extras": extras,
                  "plain_dicts": plain_dicts}))
"""


def test_moto_and_its_region_lookups_share_one_plain_copy_of_a_service_model() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SHARED_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(result.stdout)
    assert seen["same"] is True
    assert seen["plain_dicts"] is True
    assert seen["extras"], "moto's extras are missing from the shared model"


OPENS_PROBE = """
import json, os, sys
from environments.plumbing import botocore_data
botocore_data.warm_up()  # as the supervisor does before it forks the embedded AWS
from environments.emulator.moto_memory import defer_instance_type_offerings, share_service_models
defer_instance_type_offerings()
share_service_models()
opened = []
def note(event, args):
    if event == "open" and isinstance(args[0], str) and "/botocore/data/" in args[0]:
        opened.append(args[0].split("/botocore/data/")[1])
sys.addaudithook(note)
from moto.backends import get_backend
backend = get_backend("ec2")["123456789012"]["us-east-1"]  # imports moto.ec2
vpcs = backend.describe_vpcs()
print(json.dumps({"opened": opened, "vpcs": len(vpcs)}))
"""


def test_moto_ec2_reads_the_ec2_model_once_and_the_endpoints_never() -> None:
    # moto.ec2 lists EC2's regions through three throwaway boto3 Sessions as it is imported;
    # each used to parse the endpoints file and EC2's model again.
    result = subprocess.run(
        [sys.executable, "-c", OPENS_PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(result.stdout)
    assert seen["vpcs"] >= 1  # the default VPC: moto works as before
    ec2_models = [path for path in seen["opened"] if path.startswith("ec2/2016-11-15/service-2")]
    assert len(ec2_models) == 1, seen["opened"]
    assert not [path for path in seen["opened"] if path.startswith("endpoints")], seen["opened"]
