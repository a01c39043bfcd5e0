"""MWAA's checks on the source bucket: it exists in our region, is versioned, and is private."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.aws.errors import error_code
from environments.naming import bucket_name
from environments.provisioning.aws_outcomes import misconfigured, outcome_for
from environments.provisioning.step import DONE, Failed, Outcome, StepContext

_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _bad(message: str) -> Failed:
    return Failed("INCORRECT_CONFIGURATION", message)


class CheckSourceBucket:
    name = "check-source-bucket"

    def ensure(self, ctx: StepContext) -> Outcome:
        s3 = ctx.services.aws.client("s3")
        bucket = bucket_name(ctx.spec["SourceBucketArn"])
        try:
            location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        except ClientError as err:
            return misconfigured(
                err,
                "GetBucketLocation",
                f"Unable to access the source bucket {bucket}; make sure it exists in this "
                "account and the execution role can read it",
            )
        region = location or "us-east-1"
        if region == "EU":
            region = "eu-west-1"
        if region != ctx.placement.region:
            return _bad(
                f"The source bucket {bucket} is in {region}; it must be in the environment's "
                f"region {ctx.placement.region}."
            )
        try:
            versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
            blocks = self._public_access_block(s3, bucket)
        except ClientError as err:
            return outcome_for(err, f"reading the configuration of bucket {bucket}")
        if versioning != "Enabled":
            return _bad(
                f"The source bucket {bucket} must have versioning enabled "
                f"(it is {versioning or 'not enabled'})."
            )
        missing = [name for name in _BLOCKS if not blocks.get(name)]
        if missing:
            return _bad(
                f"The source bucket {bucket} must block all public access; "
                f"not set: {', '.join(missing)}."
            )
        return DONE

    @staticmethod
    def _public_access_block(s3, bucket: str) -> dict[str, bool]:
        try:
            answer = s3.get_public_access_block(Bucket=bucket)
        except ClientError as err:
            if error_code(err) == "NoSuchPublicAccessBlockConfiguration":
                return {}
            raise
        return answer.get("PublicAccessBlockConfiguration", {})

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
