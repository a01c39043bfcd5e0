"""Which environments of a server use the resources of a prerequisites stack.

`airdock infra down` asks before it deletes a role, subnets or a security group that a live
environment still runs with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controlplane.server_link import ApiError, ServerLink, signed_get


def stack_resources(outputs: dict[str, str]) -> set[str]:
    """The role ARN, subnet ids and security group id a stack's outputs name."""
    found = {outputs.get("ExecutionRoleArn", ""), outputs.get("SecurityGroupId", "")}
    found.update(outputs.get("SubnetIds", "").split(","))
    found.update(outputs.get(key, "") for key in ("PrivateSubnet1Id", "PrivateSubnet2Id"))
    return {value for value in found if value}


def environment_resources(env: dict[str, Any]) -> set[str]:
    network = env.get("NetworkConfiguration") or {}
    return {
        env.get("ExecutionRoleArn", ""),
        *network.get("SubnetIds", []),
        *network.get("SecurityGroupIds", []),
    } - {""}


def environments_using(link: ServerLink, resources: set[str]) -> list[str]:
    """Names of the server's environments that use any of `resources`."""
    users: list[str] = []
    token = None
    while True:
        query = f"?NextToken={quote(token, safe='')}" if token else ""
        page = signed_get(link, f"/environments{query}")
        for name in page.get("Environments", []):
            try:
                env = signed_get(link, f"/environments/{quote(name, safe='')}")["Environment"]
            except ApiError as err:
                if err.code == "ResourceNotFoundException":
                    continue  # deleted meanwhile
                raise
            if environment_resources(env) & resources:
                users.append(name)
        token = page.get("NextToken")
        if not token:
            return users
