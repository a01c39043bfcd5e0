"""The first full DAG sync; afterwards the sync service keeps the mirror current."""

from __future__ import annotations

from botocore.exceptions import ClientError

from environments.contents.dag_reports import refresh_dag_report
from environments.contents.dagsync import DagSyncer, SyncError
from environments.naming import bucket_name
from environments.provisioning.aws_outcomes import misconfigured
from environments.provisioning.step import DONE, Failed, Outcome, StepContext


class SyncDags:
    name = "dags"

    def ensure(self, ctx: StepContext) -> Outcome:
        syncer = DagSyncer(ctx.services.workspace(ctx.name))
        bucket = bucket_name(ctx.spec["SourceBucketArn"])
        try:
            report = syncer.sync(
                ctx.services.source_reader(ctx.spec).client("s3"), bucket, ctx.spec["DagS3Path"]
            )
        except SyncError as err:
            return Failed("INCORRECT_CONFIGURATION", f"DagS3Path {ctx.spec['DagS3Path']}: {err}")
        except ClientError as err:
            return misconfigured(
                err,
                "syncing DAGs",
                f"Unable to read DAGs from s3://{bucket}/{ctx.spec['DagS3Path']}",
            )
        ctx.resources["dags"] = {
            "files": report.unchanged + len(report.downloaded),
            "refused": len(report.refused),
        }
        # DAG problems never fail the environment (MWAA shows them in Airflow); they are
        # reported by `airdock env dags` and in the DAGProcessing log group. Parsing takes
        # seconds, so where a background reporter exists it does not hold up AVAILABLE.
        if ctx.services.dags_changed is not None:
            ctx.services.dags_changed(ctx.name)
        else:
            refresh_dag_report(ctx.services, ctx.name, ctx.spec)
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
