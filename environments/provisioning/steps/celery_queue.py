"""The SQS queue the Celery executor uses (GetEnvironment's CeleryExecutorQueue)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.aws.errors import error_code
from environments.provisioning.aws_outcomes import outcome_for
from environments.provisioning.step import DONE, OWNER_TAG, Outcome, RetryLater, StepContext

_QUEUE_ATTRIBUTES = {"MessageRetentionPeriod": "1209600"}
# The visibility timeout the workers assume (environments.airflow.runtime.configuration): set
# after the queue exists, so a queue made with MWAA's 12 hours by an earlier release is not
# refused by CreateQueue for differing attributes, but brought in line.
_VISIBILITY_TIMEOUT = "1800"
# SQS refuses a queue name for 60 s after a queue of that name was deleted (it was deleted
# from outside and is being made again): wait that long rather than spend the budget.
_DELETED_RECENTLY = ("AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently")


class CeleryQueue:
    name = "celery-queue"

    def ensure(self, ctx: StepContext) -> Outcome:
        sqs = ctx.services.aws.client("sqs")
        queue_name = ctx.placement.queue_name(ctx.env_id)
        try:
            url = sqs.create_queue(
                QueueName=queue_name,
                Attributes=_QUEUE_ATTRIBUTES,
                tags={OWNER_TAG: ctx.arn},
            )["QueueUrl"]
            sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"VisibilityTimeout": _VISIBILITY_TIMEOUT}
            )
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        except ClientError as err:
            if error_code(err) in _DELETED_RECENTLY:
                return RetryLater(f"queue {queue_name} was deleted recently", delay=61.0)
            return outcome_for(err, f"creating queue {queue_name}")
        ctx.resources["celery_queue"] = {"url": url, "arn": arn}
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        sqs = ctx.services.aws.client("sqs")
        queue_name = ctx.placement.queue_name(ctx.env_id)
        try:
            url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
            if tags.get(OWNER_TAG) == ctx.arn:
                sqs.delete_queue(QueueUrl=url)
        except ClientError as err:
            if error_code(err) not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                return outcome_for(err, f"deleting queue {queue_name}")
        ctx.resources.pop("celery_queue", None)
        return DONE
