"""MWAA's check that plugins, requirements and the startup script exist at their versions."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.naming import bucket_name
from environments.provisioning.aws_outcomes import misconfigured
from environments.provisioning.step import DONE, Outcome, StepContext

ARTIFACTS = (
    ("Plugins", "plugins"),
    ("Requirements", "requirements"),
    ("StartupScript", "startup script"),
)


class CheckArtifacts:
    name = "check-artifacts"

    def ensure(self, ctx: StepContext) -> Outcome:
        s3 = ctx.services.source_reader(ctx.spec).client("s3")
        bucket = bucket_name(ctx.spec["SourceBucketArn"])
        for field, label in ARTIFACTS:
            key = ctx.spec.get(f"{field}S3Path")
            if not key:
                continue
            version = ctx.spec.get(f"{field}S3ObjectVersion")
            args = {"Bucket": bucket, "Key": key}
            if version:
                args["VersionId"] = version
            try:
                s3.head_object(**args)
            except ClientError as err:
                return misconfigured(
                    err,
                    f"HeadObject {key}",
                    f"Unable to read version {version or 'latest'} of the {label} file "
                    f"s3://{bucket}/{key}",
                )
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
