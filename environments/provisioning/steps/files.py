"""Helpers the content steps share: fetching a versioned object, and where logs go."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError

from environments.naming import bucket_name
from environments.plumbing.files import atomic_write
from environments.provisioning.aws_outcomes import misconfigured
from environments.provisioning.step import Failed, Outcome, StepContext
from environments.spec import LOG_MODULES, log_group_name

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024


def fetch_artifact(ctx: StepContext, field: str, label: str, dest: Path) -> Outcome | None:
    """Download `{field}S3Path` at `{field}S3ObjectVersion` to `dest`; None when it worked."""
    key = ctx.spec[f"{field}S3Path"]
    version = ctx.spec.get(f"{field}S3ObjectVersion")
    bucket = bucket_name(ctx.spec["SourceBucketArn"])
    args = {"Bucket": bucket, "Key": key}
    if version:
        args["VersionId"] = version
    s3 = ctx.services.source_reader(ctx.spec).client("s3")
    try:
        answer = s3.get_object(**args)
        if answer.get("ContentLength", 0) > MAX_ARTIFACT_BYTES:
            return Failed(
                "INCORRECT_CONFIGURATION",
                f"The {label} file s3://{bucket}/{key} is larger than {MAX_ARTIFACT_BYTES} bytes.",
            )
        atomic_write(dest, answer["Body"].read())
    except ClientError as err:
        return misconfigured(
            err,
            f"GetObject {key}",
            f"Unable to read version {version or 'latest'} of the {label} file s3://{bucket}/{key}",
        )
    return None


def enabled_log_groups(ctx: StepContext, *modules: str) -> list[str]:
    """Names of the environment's log groups for `modules` (all enabled ones if none given)."""
    config = ctx.spec.get("LoggingConfiguration") or {}
    wanted = modules or LOG_MODULES
    return [log_group_name(ctx.name, m) for m in wanted if (config.get(m) or {}).get("Enabled")]


def artifact_identity(ctx: StepContext, field: str) -> str | None:
    key = ctx.spec.get(f"{field}S3Path")
    if not key:
        return None
    return f"{ctx.spec['SourceBucketArn']}/{key}@{ctx.spec.get(f'{field}S3ObjectVersion') or ''}"
