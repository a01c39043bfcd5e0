"""Shared fixtures: a live `airdock serve` on a random loopback port, and databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from controlplane.clientconfig import ENDPOINTS_FILE, read_endpoints
from controlplane.credentials import read_admin
from environments.airflow.metadb.embedded import EmbeddedPostgres
from environments.plumbing import processes
from environments.provisioning.steps.check_role import airflow_trust_policy
from tests import xdist_units
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
TEST_TMP = Path(tempfile.gettempdir()) / "airdock-tests"


@dataclass
class LiveServer:
    """A running `airdock serve` child process and how to reach it."""

    data_dir: Path
    process: subprocess.Popen
    endpoints: dict

    @property
    def url(self) -> str:
        return self.endpoints["mwaa_endpoint"]

    @property
    def aws_url(self) -> str:
        return self.endpoints["aws_endpoint"]

    def admin_key(self) -> tuple[str, str]:
        admin = read_admin(self.data_dir)
        return admin.access_key_id, admin.secret_access_key

    def mwaa(self, key: tuple[str, str] | None = None, **config: object):
        access, secret = key or self.admin_key()
        return boto3.client(
            "mwaa",
            endpoint_url=self.url,
            region_name=self.endpoints["region"],
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}, **config),
        )

    def aws(self, service: str, endpoint_url: str | None = None):
        access, secret = self.admin_key()
        return boto3.client(
            service,
            endpoint_url=endpoint_url or self.aws_url,
            region_name=self.endpoints["region"],
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        )

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_CONFIG_FILE=str(self.data_dir / "aws" / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.data_dir / "aws" / "credentials"),
            AWS_PROFILE="airdock",
        )
        return env

    def aws_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        aws = Path(sys.executable).with_name("aws")
        return subprocess.run(
            [str(aws), *args], env=self.cli_env(), capture_output=True, text=True, check=check
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # `airdock serve` leaves its PostgreSQL running when it is SIGKILLed, for the next
        # start to adopt; a test's server must leave nothing running.
        EmbeddedPostgres(self.data_dir).stop_left_running()


def pytest_configure(config: pytest.Config) -> None:
    """As root, Airdock runs PostgreSQL and user code as accounts of their own, which must
    traverse the folders above a data dir. pytest's shared temporary root is private (0700, and
    reset to it by every pytest run on the machine), so root runs get a root of their own:
    TEST_TMP/run-<pid>, traversable (o+x) but not listable. Runs that ended are cleared at the
    next start; the last one stays for its logs."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        # The xdist controller: its workers, started after this, record their units here.
        handle, units = tempfile.mkstemp(prefix="airdock-test-units-", suffix=".json")
        os.close(handle)
        os.environ[xdist_units.UNITS_FILE_ENV] = units
    if os.geteuid() != 0 or config.option.basetemp:
        return
    TEST_TMP.mkdir(mode=0o711, exist_ok=True)
    TEST_TMP.chmod(0o711)
    for old in TEST_TMP.glob("run-*"):
        pid = old.name.removeprefix("run-")
        if pid.isdigit() and not processes.is_running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    config.option.basetemp = str(TEST_TMP / f"run-{os.getpid()}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    xdist_units.order_and_record(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadscope` schedules tests xdist_units' way (see there); other modes, xdist's."""
    if config.getvalue("dist") != "loadscope":
        return None
    return xdist_units.make_scheduler(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    units = os.environ.get(xdist_units.UNITS_FILE_ENV)
    if units and not hasattr(config, "workerinput"):  # the xdist controller made it
        Path(units).unlink(missing_ok=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The environment accounts this run's servers made go with it: system account ids are
    few, and these temporary folders outlive the run only for their logs."""
    basetemp = session.config.option.basetemp
    if os.geteuid() != 0 or not basetemp:
        return
    import pwd

    from environments.plumbing import os_users

    prefix = "Airdock workspace " + str(Path(basetemp).absolute()) + os.sep
    for entry in pwd.getpwall():
        if entry.pw_name.startswith("airdock-") and entry.pw_gecos.startswith(prefix):
            os_users.remove_account(entry.pw_name)


@pytest.fixture(scope="session", autouse=True)
def traversable_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Temporary folders (tmp_path's too) come from the factory, private (0700); as root they
    get o+x, traversal only: unlistable still, their files keep their own modes."""
    if os.geteuid() != 0:
        return

    def traversable(folder: Path) -> Path:
        folder.chmod(folder.stat().st_mode & 0o7777 | 0o011)
        return folder

    traversable(tmp_path_factory.getbasetemp())
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A worker's basetemp lies in the run's own, which the xdist controller made, private.
        traversable(tmp_path_factory.getbasetemp().parent)
    private_mktemp = tmp_path_factory.mktemp

    def mktemp(basename: str, numbered: bool = True) -> Path:
        return traversable(private_mktemp(basename, numbered))

    tmp_path_factory.mktemp = mktemp  # type: ignore[method-assign]


TEST_UV_CACHE = Path(
    os.environ.get("AIRDOCK_TEST_UV_CACHE", Path.home() / ".cache/airdock-tests/uv")
)


def start_server(
    data_dir: Path,
    *extra: str,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
    airflow: bool = False,
) -> LiveServer:
    """Start `airdock serve` on a free port and wait until /_airdock/health answers 200.

    About 6 s on an idle machine, most of it importing. `timeout` is a guard against a server
    that never comes up, not a speed check: with the suite's Airflow environments building
    their virtualenvs and bytecode on both cores, one start took over a minute."""
    (data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
    log = open(data_dir.parent / f"{data_dir.name}-server.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--web-port",
            "0",
            "--data-dir",
            str(data_dir),
            "--poll-interval",
            "0.1",
            # The embedded AWS sends no S3 event for a delete marker, so on a versioned bucket
            # deletions reach the DAG folder by the polling pass; keep it short for tests.
            "--dag-sync-interval",
            "5",
            # Building an Airflow virtualenv per environment is tested where it matters;
            # elsewhere it would only make every create wait for the installer.
            *([] if airflow else ["--no-airflow"]),
            *extra,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AIRDOCK_UV_CACHE_DIR": str(TEST_UV_CACHE), **(env or {})},
    )
    log.close()

    def healthy() -> dict | None:
        if process.poll() is not None:
            # The log's end, here: tmp dirs of a finished run are gone when someone looks.
            tail = Path(log.name).read_text(errors="replace").splitlines()[-40:]
            raise RuntimeError(
                f"airdock serve exited ({process.returncode}); the end of {log.name}:\n"
                + "\n".join(tail)
            )
        try:
            endpoints = read_endpoints(data_dir)
            url = endpoints.mwaa_endpoint + "/_airdock/health"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return asdict(endpoints) if answer.status == 200 else None
        except (OSError, ValueError):
            return None  # not written yet, or not answering yet

    try:
        endpoints = wait_until(
            healthy,
            timeout=timeout,
            interval=0.1,
            message=f"airdock serve to answer /_airdock/health (log: {log.name})",
        )
    except AssertionError:
        process.kill()
        process.wait()
        raise
    return LiveServer(data_dir, process, endpoints)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("airdock") / "data")
    yield live
    live.stop()


@pytest.fixture
def mwaa(server: LiveServer):
    return server.mwaa()


@pytest.fixture
def env_name() -> str:
    return f"env-{uuid.uuid4().hex[:10]}"


def create_params(**overrides: object) -> dict:
    params: dict = {
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/airdock-test",
        "SourceBucketArn": "arn:aws:s3:::airdock-test-bucket",
        "DagS3Path": "dags",
        "NetworkConfiguration": {
            "SubnetIds": ["subnet-0aaa", "subnet-0bbb"],
            "SecurityGroupIds": ["sg-0aaa"],
        },
    }
    params.update(overrides)
    return params


def wait_for_status(client, name: str, wanted: set[str], timeout: float = 30.0) -> dict:
    seen: list[str] = []

    def reached() -> dict | None:
        env = client.get_environment(Name=name)["Environment"]
        seen.append(env["Status"])
        return env if env["Status"] in wanted else None

    return wait_until(
        reached,
        timeout=timeout,
        message=lambda: f"{name} to reach {sorted(wanted)}; it is stuck in {seen[-1]}",
    )


def wait_gone(client, name: str, timeout: float = 30.0) -> None:
    def gone() -> bool:
        try:
            client.get_environment(Name=name)
        except client.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_until(gone, timeout=timeout, message=f"{name} to be deleted")


# --- databases ----------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get(
    "AIRDOCK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        import psycopg

        with psycopg.connect(
            PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=2
        ):
            return None
    except Exception as err:  # any failure means: no usable server here
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 ({type(err).__name__})"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"airdock_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


# --- prerequisites in the embedded AWS ----------------------------------------------------

TRUST_POLICY = airflow_trust_policy()


def execution_role_policy(bucket: str) -> str:
    """The execution-role policy MWAA documents, for any environment name: read the source
    bucket, write the environments' logs and metrics, use the Celery queues."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject*", "s3:GetBucket*", "s3:List*"],
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:CreateLogGroup",
                        "logs:PutLogEvents",
                        "logs:GetLogEvents",
                        "logs:GetLogRecord",
                        "logs:GetLogGroupFields",
                        "logs:GetQueryResults",
                    ],
                    "Resource": "arn:aws:logs:*:*:log-group:airflow-*",
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:DescribeLogGroups",
                        "cloudwatch:PutMetricData",
                        "s3:GetAccountPublicAccessBlock",
                    ],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "sqs:ChangeMessageVisibility",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "sqs:GetQueueUrl",
                        "sqs:ReceiveMessage",
                        "sqs:SendMessage",
                    ],
                    "Resource": "arn:aws:sqs:*:*:airflow-celery-*",
                },
            ],
        }
    )


def make_prerequisites(live: LiveServer, suffix: str = "") -> dict:
    """What MWAA needs before CreateEnvironment: a private versioned bucket, a trusted role,
    and two subnets in two AZs of one VPC with a security group. Returns CreateEnvironment
    arguments built from them."""
    tag = suffix or uuid.uuid4().hex[:8]
    s3, iam, ec2 = live.aws("s3"), live.aws("iam"), live.aws("ec2")
    bucket = f"airdock-dags-{tag}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    role = iam.create_role(
        RoleName=f"airdock-exec-{tag}", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY)
    )["Role"]["Arn"]
    # Environments read the bucket as this role.
    iam.put_role_policy(
        RoleName=f"airdock-exec-{tag}",
        PolicyName="mwaa-execution",
        PolicyDocument=execution_role_policy(bucket),
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(("us-east-1a", "us-east-1b"))
    ]
    group = ec2.create_security_group(GroupName=f"airflow-{tag}", Description="mwaa", VpcId=vpc)[
        "GroupId"
    ]
    return {
        "ExecutionRoleArn": role,
        "SourceBucketArn": f"arn:aws:s3:::{bucket}",
        "DagS3Path": "dags",
        "NetworkConfiguration": {"SubnetIds": subnets, "SecurityGroupIds": [group]},
    }


@pytest.fixture(scope="session")
def prerequisites(server: LiveServer) -> dict:
    return make_prerequisites(server, "shared")


@pytest.fixture
def params(prerequisites: dict):
    """Valid CreateEnvironment arguments against the session server's embedded AWS."""

    def build(**overrides: object) -> dict:
        return {**json.loads(json.dumps(prerequisites)), **overrides}

    return build
