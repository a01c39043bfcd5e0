"""S3 event notifications from the source bucket's DAG prefix to Airdock's event queue.

The queue is shared by every environment of this Airdock (one listener, any number of
buckets). The bucket's notification configuration belongs to the user: we add one entry
with our own Id and remove exactly that entry again, leaving every other entry untouched
(without races between environments: see notification_edits).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from environments.aws.errors import error_code
from environments.contents.dagsync import dag_prefix
from environments.naming import DAG_EVENT_QUEUE, bucket_name
from environments.plumbing.locks import LockTimeout
from environments.provisioning.aws_outcomes import outcome_for
from environments.provisioning.step import DONE, Outcome, RetryLater, StepContext
from environments.provisioning.steps.notification_edits import put_entry, remove_entry

SHARED_TAG = {"airdock:role": "dag-events"}


def notification_id(ctx: StepContext) -> str:
    return f"airdock-dags-{ctx.env_id}"


def ensure_event_queue(sqs: Any, region: str, account_id: str) -> tuple[str, str]:
    """The shared queue's URL and ARN; S3 in this account may send to it."""
    url = sqs.create_queue(QueueName=DAG_EVENT_QUEUE, tags=SHARED_TAG)["QueueUrl"]
    arn = f"arn:aws:sqs:{region}:{account_id}:{DAG_EVENT_QUEUE}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3DagEvents",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


class DagEvents:
    name = "dag-events"

    def ensure(self, ctx: StepContext) -> Outcome:
        if not ctx.services.dag_events:
            return DONE
        s3, sqs = ctx.services.aws.client("s3"), ctx.services.aws.client("sqs")
        bucket = bucket_name(ctx.spec["SourceBucketArn"])
        previous = (ctx.resources.get("dag_events") or {}).get("bucket")
        if previous and previous != bucket:  # the source bucket changed: leave the old one
            outcome = _remove_entry(ctx, s3, previous, notification_id(ctx))
            if outcome is not DONE:
                return outcome
        try:
            _, queue_arn = ensure_event_queue(sqs, ctx.placement.region, ctx.placement.account_id)
            ours: dict[str, Any] = {
                "Id": notification_id(ctx),
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            }
            prefix = dag_prefix(ctx.spec["DagS3Path"])
            if prefix:
                ours["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
            put_entry(ctx, s3, bucket, ours)
        except ClientError as err:
            return outcome_for(err, "configuring DAG event notifications")
        except LockTimeout as err:
            return RetryLater(f"configuring DAG event notifications: {err}")
        ctx.resources["dag_events"] = {"bucket": bucket, "id": ours["Id"]}
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        # Look in the bucket of the spec and in the one recorded, in case a crash came
        # between changing the bucket's configuration and recording it.
        buckets = {bucket_name(ctx.spec["SourceBucketArn"])}
        recorded = (ctx.resources.get("dag_events") or {}).get("bucket")
        if recorded:
            buckets.add(recorded)
        s3 = ctx.services.aws.client("s3")
        for bucket in sorted(buckets):
            outcome = _remove_entry(ctx, s3, bucket, notification_id(ctx))
            if outcome is not DONE:
                return outcome
        ctx.resources.pop("dag_events", None)
        return DONE


def _remove_entry(ctx: StepContext, s3: Any, bucket: str, entry_id: str) -> Outcome:
    try:
        remove_entry(ctx, s3, bucket, entry_id)
    except ClientError as err:
        if error_code(err) != "NoSuchBucket":
            return outcome_for(err, "removing DAG event notifications")
    except LockTimeout as err:
        return RetryLater(f"removing DAG event notifications: {err}")
    return DONE
