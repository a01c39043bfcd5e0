"""How the control plane puts the gateway in front of the embedded AWS it starts.

Kept apart from the gateway itself, which imports moto: the control plane only names the
factory and passes its configuration through the child's environment.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_ENV = "AIRDOCK_AWS_GATEWAY"
FRONT = "controlplane.aws_gateway.gateway:from_environment"


def gateway_environment(
    *, data_dir: Path, iam_config: Path | None, database_url: str, account_id: str, region: str
) -> dict[str, str]:
    """The environment variable that tells the gateway where the identity store is."""
    config = {
        "data_dir": str(data_dir.resolve()),
        "iam_config": str(iam_config.resolve()) if iam_config else None,
        "database_url": database_url,
        "account_id": account_id,
        "region": region,
    }
    return {CONFIG_ENV: json.dumps(config)}
