"""CloudWatch log groups `airflow-{Name}-{Module}` for the enabled logging modules.

A group is created (or adopted when a crash left it behind) and tagged with the environment
ARN; a disabled module's group is deleted, but only when that tag says it is ours.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.aws.errors import error_code
from environments.provisioning.aws_outcomes import outcome_for
from environments.provisioning.step import DONE, OWNER_TAG, Outcome, StepContext
from environments.spec import LOG_MODULES, log_group_name


def _enabled(ctx: StepContext) -> set[str]:
    config = ctx.spec.get("LoggingConfiguration") or {}
    return {m for m in LOG_MODULES if (config.get(m) or {}).get("Enabled")}


class LogGroups:
    name = "log-groups"

    def ensure(self, ctx: StepContext) -> Outcome:
        logs = ctx.services.aws.client("logs")
        arns: dict[str, str] = {}
        wanted = _enabled(ctx)
        try:
            for module in LOG_MODULES:
                group = log_group_name(ctx.name, module)
                if module in wanted:
                    self._ensure_group(logs, group, ctx)
                    arns[module] = ctx.placement.log_group_arn(ctx.name, module)
                else:
                    self._remove_if_ours(logs, group, ctx.arn)
        except ClientError as err:
            return outcome_for(err, "managing log groups")
        ctx.resources["log_groups"] = arns
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        logs = ctx.services.aws.client("logs")
        try:
            for module in LOG_MODULES:
                self._remove_if_ours(logs, log_group_name(ctx.name, module), ctx.arn)
        except ClientError as err:
            return outcome_for(err, "deleting log groups")
        ctx.resources.pop("log_groups", None)
        return DONE

    @staticmethod
    def _ensure_group(logs, group: str, ctx: StepContext) -> None:
        tags = {OWNER_TAG: ctx.arn}
        try:
            logs.create_log_group(logGroupName=group, tags=tags)
        except ClientError as err:
            if error_code(err) != "ResourceAlreadyExistsException":
                raise
            logs.tag_log_group(logGroupName=group, tags=tags)
        logs.put_retention_policy(
            logGroupName=group, retentionInDays=ctx.services.log_retention_days
        )

    @staticmethod
    def _remove_if_ours(logs, group: str, owner_arn: str) -> None:
        try:
            tags = logs.list_tags_log_group(logGroupName=group).get("tags", {})
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return
            raise
        if tags.get(OWNER_TAG) != owner_arn:
            return  # not ours: never delete a user's group that happens to share the name
        try:
            logs.delete_log_group(logGroupName=group)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
