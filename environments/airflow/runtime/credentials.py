"""The execution role's credentials for an environment's processes, short-lived and refreshed.

The control plane assumes the role (STS AssumeRole on the environment's AWS) and writes the
keys where botocore's `credential_process` reads them. botocore treats such credentials as
refreshable: it asks again shortly before they expire, and by then the control plane has
written new ones. So `boto3.client("s3")` in a task, the Amazon provider's hooks on
`aws_default` and Celery's SQS transport all run as the role, with no keys in any variable.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from environments.plumbing.files import atomic_write

log = logging.getLogger(__name__)

SESSION_NAME = "AmazonMWAA-airflow"
DURATION_SECONDS = 3600
REFRESH_AFTER_SECONDS = 1200  # well before botocore's own 15-minute refresh window


class RoleCredentials:
    """The files one environment's processes read: an AWS config and an empty credentials
    file (so nothing of the host's ~/.aws is picked up)."""

    def __init__(
        self,
        folder: Path,
        role_arn: str,
        region: str,
        endpoint: str | None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.folder = folder
        self.owner = owner  # (uid, gid) of the environment's account, when it has one
        self.role_arn = role_arn
        self.region = region
        self.endpoint = endpoint
        self.refreshed_at = 0.0
        self.error: str | None = None

    @property
    def config_file(self) -> Path:
        return self.folder / "config"

    @property
    def credentials_file(self) -> Path:
        return self.folder / "credentials"

    @property
    def keys_file(self) -> Path:
        return self.folder / "role-credentials.json"

    def write_config(self) -> None:
        lines = ["[default]", f"region = {self.region}"]
        lines.append(f"credential_process = /bin/cat {shlex.quote(str(self.keys_file))}")
        if self.endpoint:
            lines.append(f"endpoint_url = {self.endpoint}")
            lines += ["s3 =", "    addressing_style = path"]
        self._write(self.config_file, "\n".join(lines) + "\n")
        if not self.credentials_file.exists():
            self._write(self.credentials_file, "")

    def refresh(self, sts: Any) -> bool:
        """Assume the role and write the keys; False (with `error`) when STS refused."""
        try:
            answer = sts.assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=SESSION_NAME,
                DurationSeconds=DURATION_SECONDS,
            )["Credentials"]
        except (ClientError, BotoCoreError) as err:
            self.error = f"assuming {self.role_arn} failed: {err}"
            log.warning("%s", self.error)
            return False
        keys = {
            "Version": 1,
            "AccessKeyId": answer["AccessKeyId"],
            "SecretAccessKey": answer["SecretAccessKey"],
            "SessionToken": answer["SessionToken"],
            "Expiration": answer["Expiration"].isoformat(),
        }
        self._write(self.keys_file, json.dumps(keys))
        self.refreshed_at = time.monotonic()
        self.error = None
        return True

    def _write(self, path: Path, text: str) -> None:
        """Readable by the environment's processes alone: its account, or Airdock's."""
        atomic_write(path, text, mode=0o600)
        if self.owner is not None:
            os.chown(path, *self.owner)

    def due(self) -> bool:
        return time.monotonic() - self.refreshed_at >= REFRESH_AFTER_SECONDS
