"""What authorization reads from the embedded AWS's own state: bucket and queue policies, and
the roles of its IAM (their trust, inline, managed and boundary policies).

The gateway runs in moto's process, so it reads moto's backends directly instead of asking
moto over HTTP (which would pass through the gateway again). Parsed policies are cached by
their text, so an unchanged policy is parsed once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import iam

log = logging.getLogger(__name__)
_PARTITION = "aws"
# The boundary of a role whose boundary policy no longer exists: it allows nothing.
_DENY_ALL = iam.parse_policy(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
)


@functools.lru_cache(maxsize=512)
def _parse(text: str, kind: str, name: str) -> iam.Policy | None:
    try:
        return iam.parse_policy(text, kind=kind, name=name)  # type: ignore[arg-type]
    except iam.PolicyError as err:
        # moto stores what it was given; a policy our engine cannot read grants nothing.
        log.warning("policy %s not understood, ignored: %s", name, err)
        return None


class MotoState:
    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region

    # --- resource-based policies ----------------------------------------------------------

    # moto's service models are imported on first use, as moto's server does: importing them
    # at start would delay the embedded AWS's readiness by seconds.

    def bucket_policy(self, bucket: str) -> iam.Policy | None:
        from moto.s3.models import s3_backends

        found = s3_backends[self.account_id][_PARTITION].buckets.get(bucket)
        text = getattr(found, "policy", None)
        if not text:
            return None
        text = text.decode() if isinstance(text, bytes) else text
        return _parse(text, "resource", f"bucket policy of {bucket}")

    def queue_policy(self, queue_arn: str) -> iam.Policy | None:
        parts = queue_arn.split(":")
        if len(parts) != 6:
            return None
        region, account, name = parts[3], parts[4], parts[5]
        from moto.sqs.models import sqs_backends

        try:
            queue = sqs_backends[account][region].queues.get(name)
        except KeyError:
            return None
        text = queue.policy if queue is not None else None
        return _parse(text, "resource", f"queue policy of {name}") if text else None

    # --- roles of the embedded IAM --------------------------------------------------------

    def _iam(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id][_PARTITION]

    def role_path(self, name: str) -> str | None:
        for role in list(self._iam().roles.values()):
            if role.name == name:
                return role.path
        return None

    def role_by_arn(self, arn: str) -> Any | None:
        for role in list(self._iam().roles.values()):
            if role.arn == arn:
                return role
        return None

    def role_by_id(self, role_id: str) -> Any | None:
        return self._iam().roles.get(role_id)

    def trust_policy(self, role: Any) -> iam.Policy | None:
        text = role.assume_role_policy_document
        return _parse(text, "trust", f"trust policy of {role.name}") if text else None

    def role_policies(self, role: Any) -> tuple[tuple[iam.Policy, ...], iam.Policy | None]:
        """The role's identity policies (inline and attached) and its permissions boundary."""
        found: list[iam.Policy] = []
        for name, text in list(role.policies.items()):
            policy = _parse(text, "identity", f"{role.name}/{name}")
            if policy is not None:
                found.append(policy)
        for arn, managed in list(role.managed_policies.items()):
            policy = self._managed(arn, managed)
            if policy is not None:
                found.append(policy)
        boundary = None
        if role.permissions_boundary_arn:
            try:
                managed = self._iam().get_policy(role.permissions_boundary_arn)
            except Exception:  # moto raises its own NoSuchEntity
                return tuple(found), _DENY_ALL
            boundary = self._managed(role.permissions_boundary_arn, managed) or _DENY_ALL
        return tuple(found), boundary

    @staticmethod
    def _managed(arn: str, managed: Any) -> iam.Policy | None:
        for version in managed.versions:
            if version.is_default:
                return _parse(version.document, "identity", arn)
        return None
