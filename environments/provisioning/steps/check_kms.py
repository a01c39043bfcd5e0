"""MWAA's check on a customer-managed key: it exists and is enabled."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.provisioning.aws_outcomes import misconfigured
from environments.provisioning.step import DONE, Failed, Outcome, StepContext


class CheckKmsKey:
    name = "check-kms-key"

    def ensure(self, ctx: StepContext) -> Outcome:
        key = ctx.spec.get("KmsKey")
        if not key:
            return DONE
        try:
            meta = ctx.services.aws.client("kms").describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as err:
            return misconfigured(err, "DescribeKey", f"The KMS key {key} could not be found")
        if not meta.get("Enabled") or meta.get("KeyState") != "Enabled":
            return Failed(
                "INCORRECT_CONFIGURATION",
                f"The KMS key {key} must be enabled; its state is {meta.get('KeyState')}.",
            )
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
