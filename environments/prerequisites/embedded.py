"""Closing the gaps of an emulator's CloudFormation (moto, the embedded AWS), so a stack of
infra/prerequisites.yaml ends up as it would on AWS.

moto implements a subset of CloudFormation. These gaps are closed here with the ordinary APIs,
from the values the template itself declares, so the template stays the one source of truth:

- AWS::S3::Bucket: VersioningConfiguration, PublicAccessBlockConfiguration and
  OwnershipControls are ignored (BucketEncryption and Tags are applied);
- AWS::EC2::VPC: EnableDnsSupport / EnableDnsHostnames are ignored;
- AWS::EC2::SubnetRouteTableAssociation: recorded, but invisible to DescribeRouteTables;
- Fn::GetAZs answers us-east-1's zones in every region: the zones go in as parameters;
- deleting: route tables and VPC endpoints have no delete handler and would keep the VPC.

Left open, because nothing checks them on an emulator: AWS::S3::BucketPolicy is skipped (moto
enforces no bucket policies anyway); SecurityGroupEgress is ignored, but moto's default rule is
the same allow-all; stack updates apply only in part (resources whose Condition turns false
stay; a role's trust policy and tags are not updated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from environments.aws.clients import AwsClients


def zone_parameters(
    clients: AwsClients, declared: dict[str, Any], given: dict[str, str]
) -> dict[str, str]:
    """moto's Fn::GetAZs names us-east-1's zones in every region: name the real ones."""
    wanted = [k for k in ("AvailabilityZone1", "AvailabilityZone2") if k in declared]
    if not wanted or all(given.get(k) for k in wanted):
        return {}
    zones = sorted(
        z["ZoneName"]
        for z in clients.client("ec2").describe_availability_zones()["AvailabilityZones"]
        if z.get("State", "available") == "available"
    )
    return {k: zones[i] for i, k in enumerate(wanted) if not given.get(k) and i < len(zones)}


def close_gaps(
    clients: AwsClients,
    template: dict[str, Any],
    stack: dict[str, Any],
    resources: list[dict[str, Any]],
) -> list[str]:
    """Set what the template declares and moto left out; what was set, for the user."""
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources}
    values: dict[str, Any] = {
        p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])
    }
    values.update(physical)
    done: list[str] = []
    for logical_id, definition in template["Resources"].items():
        fill = _GAP_FILLERS.get(definition.get("Type", ""))
        if fill is None or not physical.get(logical_id):
            continue
        props = {k: _resolve(v, values) for k, v in (definition.get("Properties") or {}).items()}
        done.extend(fill(clients, physical[logical_id], props))
    return done


def _resolve(value: Any, values: dict[str, Any]) -> Any:
    """Plain values and Refs; anything else (Fn::Sub, Fn::If, ...) resolves to None."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return values.get(value["Ref"])
        if any(k.startswith("Fn::") for k in value):
            return None
        return {k: _resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    return value


def _fill_bucket(clients: AwsClients, bucket: str, props: dict[str, Any]) -> list[str]:
    s3, done = clients.client("s3"), []
    wanted = (props.get("VersioningConfiguration") or {}).get("Status")
    if wanted and s3.get_bucket_versioning(Bucket=bucket).get("Status") != wanted:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": wanted})
        done.append(f"bucket {bucket}: versioning {wanted}")
    # The template property, the S3 request member and the response member share one name.
    settings = [
        (
            "PublicAccessBlockConfiguration",
            "public access block",
            s3.get_public_access_block,
            s3.put_public_access_block,
            lambda have, want: all(bool(have.get(k)) == bool(v) for k, v in want.items()),
        ),
        (
            "OwnershipControls",
            "ownership controls",
            s3.get_bucket_ownership_controls,
            s3.put_bucket_ownership_controls,
            lambda have, want: have.get("Rules") == want.get("Rules"),
        ),
    ]
    for member, label, read, write, matches in settings:
        declared = props.get(member)
        if not declared:
            continue
        try:
            current = read(Bucket=bucket)[member]
        except ClientError:  # never set
            current = {}
        if not matches(current, declared):
            write(Bucket=bucket, **{member: declared})
            done.append(f"bucket {bucket}: {label}")
    return done


def _fill_vpc(clients: AwsClients, vpc_id: str, props: dict[str, Any]) -> list[str]:
    ec2, done = clients.client("ec2"), []
    for prop, attribute in (
        ("EnableDnsSupport", "enableDnsSupport"),
        ("EnableDnsHostnames", "enableDnsHostnames"),
    ):
        wanted = props.get(prop)
        if wanted is None:
            continue
        key = attribute[0].upper() + attribute[1:]
        current = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
        if bool(current) != bool(wanted):
            ec2.modify_vpc_attribute(VpcId=vpc_id, **{key: {"Value": bool(wanted)}})
            done.append(f"vpc {vpc_id}: {attribute} {bool(wanted)}")
    return done


def _fill_association(clients: AwsClients, _physical: str, props: dict[str, Any]) -> list[str]:
    table, subnet = props.get("RouteTableId"), props.get("SubnetId")
    if not table or not subnet:
        return []
    ec2 = clients.client("ec2")
    found = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
    if any(a.get("SubnetId") == subnet for a in found.get("Associations", [])):
        return []
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    return [f"route table {table}: associated with {subnet}"]


_GAP_FILLERS: dict[str, Callable[[AwsClients, str, dict[str, Any]], list[str]]] = {
    "AWS::S3::Bucket": _fill_bucket,
    "AWS::EC2::VPC": _fill_vpc,
    "AWS::EC2::SubnetRouteTableAssociation": _fill_association,
}


def remove_undeletable(clients: AwsClients, resources: list[dict[str, Any]]) -> None:
    """moto's CloudFormation cannot delete these, and they keep the VPC from going."""
    ec2 = clients.client("ec2")
    endpoints = [
        r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::EC2::VPCEndpoint"
    ]
    if endpoints:
        ec2.delete_vpc_endpoints(VpcEndpointIds=endpoints)
    tables = [
        r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::EC2::RouteTable"
    ]
    for table in ec2.describe_route_tables(RouteTableIds=tables)["RouteTables"] if tables else []:
        for association in table.get("Associations", []):
            if not association.get("Main"):
                ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
        ec2.delete_route_table(RouteTableId=table["RouteTableId"])
