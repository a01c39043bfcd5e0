"""What a request asks permission for: IAM action, resource ARN, condition keys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    action: str  # e.g. "s3:GetObject"
    resource: str  # an ARN, or "*"
    context: dict[str, str] = field(default_factory=dict)
    # Whose resource-based policy also speaks: ("s3", bucket) or ("sqs", queue ARN).
    owner: tuple[str, str] | None = None


@dataclass(frozen=True)
class Where:
    """The account and region the embedded AWS stands for."""

    account_id: str
    region: str
