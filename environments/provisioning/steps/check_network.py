"""MWAA's network checks: two subnets of one VPC in different AZs; groups in that VPC."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.provisioning.aws_outcomes import misconfigured
from environments.provisioning.step import DONE, Failed, Outcome, StepContext


def _bad(message: str) -> Failed:
    return Failed("INCORRECT_CONFIGURATION", message)


class CheckNetwork:
    name = "check-network"

    def ensure(self, ctx: StepContext) -> Outcome:
        network = ctx.spec["NetworkConfiguration"]
        subnet_ids = list(network.get("SubnetIds") or [])
        group_ids = list(network.get("SecurityGroupIds") or [])
        ec2 = ctx.services.aws.client("ec2")
        try:
            subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
        except ClientError as err:
            return misconfigured(
                err, "DescribeSubnets", f"The subnets {', '.join(subnet_ids)} could not be found"
            )
        found = {s["SubnetId"]: s for s in subnets}
        missing = [s for s in subnet_ids if s not in found]
        if missing:
            return _bad(f"The subnets {', '.join(missing)} do not exist.")
        vpcs = {s["VpcId"] for s in subnets}
        if len(vpcs) != 1:
            return _bad(f"The subnets must be in one VPC; they are in {', '.join(sorted(vpcs))}.")
        zones = {s["AvailabilityZone"] for s in subnets}
        if len(zones) != len(subnet_ids):
            return _bad(
                "The subnets must be in different Availability Zones; "
                f"both are in {', '.join(sorted(zones))}."
            )
        vpc_id = vpcs.pop()
        try:
            groups = ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]
        except ClientError as err:
            return misconfigured(
                err,
                "DescribeSecurityGroups",
                f"The security groups {', '.join(group_ids)} could not be found",
            )
        outside = [g["GroupId"] for g in groups if g.get("VpcId") != vpc_id]
        absent = sorted(set(group_ids) - {g["GroupId"] for g in groups})
        if absent:
            return _bad(f"The security groups {', '.join(absent)} do not exist.")
        if outside:
            return _bad(
                f"The security groups {', '.join(outside)} are not in the subnets' VPC {vpc_id}."
            )
        ctx.resources["network"] = {"vpc_id": vpc_id, "availability_zones": sorted(zones)}
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        ctx.resources.pop("network", None)
        return DONE
