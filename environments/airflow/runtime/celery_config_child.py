"""Celery settings for an Airdock environment; runs inside the environment's own Airflow.

Copied next to the environment's AIRFLOW_HOME and named by `[celery] celery_config_options`.
It starts from the Celery provider's defaults and points the broker at the environment's SQS
queue, as MWAA does: the queue is predefined (under its own name and "default"), so Celery
never lists or creates queues, and SSL follows the endpoint. Credentials and the endpoint come
from the process environment (the execution role and the environment's AWS). This file
imports nothing of Airdock's.
"""

import copy
import os

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

_QUEUE = {"url": os.environ["AIRDOCK_CELERY_QUEUE_URL"]}

CELERY_CONFIG = copy.deepcopy(DEFAULT_CELERY_CONFIG)
CELERY_CONFIG["broker_transport_options"] = {
    **CELERY_CONFIG.get("broker_transport_options", {}),
    "predefined_queues": {
        os.environ["AIRDOCK_CELERY_QUEUE_NAME"]: dict(_QUEUE),
        "default": dict(_QUEUE),
    },
    "is_secure": os.environ.get("AIRDOCK_CELERY_SECURE", "true") == "true",
    "region": os.environ.get("AWS_REGION", "us-east-1"),
    # The queue's own VisibilityTimeout (set when it is provisioned) says the same.
    "visibility_timeout": int(
        os.environ.get("AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT", "1800")
    ),
}
CELERY_CONFIG["database_engine_options"] = {"pool_pre_ping": True, "pool_recycle": 1200}

# A worker on another host waits for a task's DAG file to be mirrored (airdock_dag_wait).
if os.environ.get("AIRDOCK_DAG_SYNC_DIR"):
    import airdock_dag_wait

    airdock_dag_wait.connect()


def _has_async_sqs_client() -> bool:
    """kombu 5.5 polls SQS asynchronously through urllib3; older releases need pycurl,
    which the locks of Airflow 2.x do not carry."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("kombu").split(".")[:2])
    if (major, minor) >= (5, 5):
        return True
    try:
        import pycurl  # noqa: F401
    except ImportError:
        return False
    return True


if not _has_async_sqs_client():
    from kombu.transport import SQS, virtual

    class PollingTransport(SQS.Transport):
        """kombu's SQS transport with its synchronous receive (long polling), for a worker
        without pycurl."""

        implements = virtual.Transport.implements.extend(
            asynchronous=False, exchange_type=frozenset(["direct"])
        )

    CELERY_CONFIG["broker_transport"] = f"{__name__}.PollingTransport"
