"""Names the service derives for an environment: ARNs, hostnames, log groups, queues."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from environments.errors import ResourceNotFoundException, ValidationException
from environments.spec import LOG_GROUP_SUFFIX

# The one queue that receives S3 event notifications for every environment's DAG prefix.
DAG_EVENT_QUEUE = "airdock-dag-events"


def bucket_name(bucket_arn: str) -> str:
    """`arn:aws:s3:::my-dags` -> `my-dags`."""
    return bucket_arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Placement:
    """Where this control plane lives: one account and one region, as an MWAA endpoint does."""

    account_id: str
    region: str
    partition: str = "aws"
    # The HTTPS port of the web doors (controlplane.doors); 443 leaves it out of hostnames.
    webserver_port: int = 443

    def environment_arn(self, name: str) -> str:
        return f"arn:{self.partition}:airflow:{self.region}:{self.account_id}:environment/{name}"

    def rbac_role_arn(self, name: str, role: str) -> str:
        return f"arn:{self.partition}:airflow:{self.region}:{self.account_id}:role/{name}/{role}"

    def name_from_arn(self, arn: str) -> str:
        """The environment name in an ARN of this account and region, else NotFound."""
        prefix = f"arn:{self.partition}:airflow:{self.region}:{self.account_id}:environment/"
        if not arn.startswith("arn:"):
            raise ValidationException(f"ResourceArn '{arn}' is not a valid environment ARN.")
        if not arn.startswith(prefix) or "/" in arn[len(prefix) :]:
            raise ResourceNotFoundException(f"Resource {arn} not found.")
        return arn[len(prefix) :]

    def log_group_arn(self, env_name: str, module: str) -> str:
        group = f"airflow-{env_name}-{LOG_GROUP_SUFFIX[module]}"
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{group}:*"

    def queue_name(self, env_id: str) -> str:
        return f"airflow-celery-{env_id}"

    def queue_arn(self, env_id: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account_id}:{self.queue_name(env_id)}"

    def webserver_hostname(self, env_id: str) -> str:
        """`127.b.c.d` or `127.b.c.d:port`: the environment's own loopback address.

        Any address of 127.0.0.0/8 reaches this host on Linux, and an address needs no name
        resolution: Python's resolver, curl and browsers all reach it without a hosts-file
        entry (a `*.localhost` name fails in glibc). An address per environment keeps each
        environment's Airflow in an origin, and a cookie jar, of its own."""
        address = webserver_address(env_id)
        return address if self.webserver_port == 443 else f"{address}:{self.webserver_port}"

    def service_role_arn(self) -> str:
        return (
            f"arn:{self.partition}:iam::{self.account_id}:role/aws-service-role/"
            "airflow.amazonaws.com/AWSServiceRoleForAmazonMWAA"
        )

    def vpce_service(self, env_id: str, kind: str) -> str:
        return f"com.amazonaws.vpce.{self.region}.vpce-svc-{kind}{env_id[:15]}"


def webserver_address(env_id: str) -> str:
    """A loopback address derived from the environment id, outside 127.0.0.0/16 (where
    127.0.0.1, Debian's 127.0.1.1 and systemd-resolved's 127.0.0.53 live)."""
    digest = hashlib.sha256(env_id.encode()).digest()
    return f"127.{1 + digest[0] % 254}.{digest[1]}.{1 + digest[2] % 254}"
