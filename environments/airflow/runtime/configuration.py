"""The environment variables each Airflow component starts with, as MWAA's images set them.

Four layers, later ones winning:

1. opinionated defaults MWAA sets and users may override;
2. the user's AirflowConfigurationOptions (the keys MWAA reserves were refused at request time,
   see environments.spec.RESERVED_CONFIG_KEYS);
3. what the startup script exported for this component;
4. essentials the runtime depends on: folders, executor, broker, database, secrets, and the
   execution role's credentials with the endpoints of the environment's AWS.

The process gets nothing else of the control plane's environment, which may hold secrets.
"""

from __future__ import annotations

import json
from pathlib import Path

from environments.airflow.runtime.plan import RuntimePlan
from environments.workspace import Workspace

# The module (copied into <home>/.airdock) that turns the queue into Celery's broker options.
CELERY_CONFIG_MODULE = "airdock_celery_config"
CELERY_CONFIG_SOURCE = Path(__file__).with_name("celery_config_child.py")
# Copied beside it on a worker host: tasks wait there for their DAG file (see the module).
DAG_WAIT_MODULE = "airdock_dag_wait"
DAG_WAIT_SOURCE = Path(__file__).with_name("dag_wait_child.py")
# Imported by Python itself at every start of the environment's interpreter (see the module).
FORK_SHARING_MODULE = "sitecustomize"
FORK_SHARING_SOURCE = Path(__file__).with_name("fork_sharing_child.py")
# How long a task's message stays invisible once a worker took it: MWAA's 12 hours would leave
# the message of a task whose worker died (and was not yet started) out of sight for half a
# day; 30 minutes brings it back soon while covering the tasks people run locally. A task
# still running when it expires may be handed out again, and Airflow refuses to run a task
# instance twice. The queue is provisioned with the same value.
VISIBILITY_TIMEOUT = 1800


def option_variable(key: str) -> str:
    """`core.dags_are_paused_at_creation` -> `AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION`."""
    section, _, name = key.partition(".")
    return f"AIRFLOW__{section.upper()}__{name.upper().replace('.', '_')}"


def opinionated(plan: RuntimePlan) -> dict[str, str]:
    concurrency = plan.worker_concurrency
    values = {
        "AIRFLOW__SCHEDULER__SCHEDULE_AFTER_TASK_EXECUTION": "False",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1800.0",
        "AIRFLOW__CORE__EXECUTE_TASKS_NEW_PYTHON_INTERPRETER": "True",
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "proxy,proxies",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW__CELERY__WORKER_AUTOSCALE": f"{concurrency},{concurrency}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        # Sending a task makes the scheduler's first SQS client (models, credentials): more
        # than Airflow's 1 s on a busy machine.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10.0",
        # New DAG files are picked up within seconds of their sync, not after five minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    if plan.major >= 3:
        # Its cleanup removes old checkouts of versioned DAG bundles; an environment's DAGs
        # are one folder, with no versions, and the cleanup's process costs each worker
        # about 100 MB.
        values["AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL"] = "0"
    return values


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
_FAB_BACKENDS = "airflow.providers.fab.auth_manager.api.auth.backend"


def auth(plan: RuntimePlan) -> dict[str, str]:
    """FAB users and roles, as MWAA runs them (environments.airflow.runtime.identity): on 3.x
    the API server's auth manager is FabAuthManager, whose `/auth/token` turns a user's
    password into the JWT the REST API takes, and whose user API (`/auth/fab/v1`) takes basic
    auth; on 2.x the REST API takes a session cookie, else basic auth (which starts a session,
    so a client pays for the password hash once)."""
    if plan.major >= 3:
        return {
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__FAB__AUTH_BACKENDS": f"{_FAB_BACKENDS}.session,{_FAB_BACKENDS}.basic_auth",
        }
    backends = f"airflow.api.auth.backend.session,{_FAB_BACKENDS}.basic_auth"
    return {"AIRFLOW__API__AUTH_BACKENDS": backends}


def essentials(
    plan: RuntimePlan,
    *,
    api_port: int,
    secrets: dict[str, str],
    aws_config: Path,
    aws_credentials: Path,
) -> dict[str, str]:
    home = plan.workspace / "home"
    support = home / ".airdock"
    api_url = f"http://127.0.0.1:{api_port}"
    # Links and redirects Airflow makes point where the user's browser reaches it.
    public_url = plan.web_url or api_url
    values = {
        "AIRFLOW_HOME": str(home),
        # The defaults file Airflow writes on first start differs between versions (3.x moved
        # options to new sections, and reads the FAB provider's from it): one per version, so
        # a version change or its rollback never runs on the other version's file. Everything
        # Airdock sets comes through the environment, never through this file.
        "AIRFLOW_CONFIG": str(home / f"airflow-{plan.airflow_version}.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(plan.workspace / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plan.workspace / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": secrets["fernet_key"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": plan.database_url,
        "AIRFLOW__CELERY__BROKER_URL": "sqs://",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{plan.database_url}",
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": f"{CELERY_CONFIG_MODULE}.CELERY_CONFIG",
        "AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL": "False",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": plan.queue_name,
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW__WEBSERVER__SECRET_KEY": secrets["secret_key"],
        "AIRFLOW__API__SECRET_KEY": secrets["secret_key"],
        "AIRDOCK_CELERY_QUEUE_NAME": plan.queue_name,
        "AIRDOCK_CELERY_QUEUE_URL": plan.queue_url,
        "AIRDOCK_CELERY_SECURE": "false" if _plain_http(plan.aws_endpoint) else "true",
        "PYTHONPATH": str(support),
        "PYTHONUNBUFFERED": "1",
        # The venv is not the environment's to write, so without this every Airflow process
        # compiles the thousands of modules it imports again (seconds of CPU each). The DAG
        # check already keeps its bytecode here (environments.contents.dag_check): the first
        # process that imports a module leaves it for every later one of this environment,
        # and a new environment starts with its lock's seed (environments.airflow.bytecode).
        "PYTHONPYCACHEPREFIX": str(Workspace(plan.workspace).bytecode),
        # The execution role, as MWAA's containers have it, and the environment's AWS.
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_credentials),
        "AWS_REGION": plan.region,
        "AWS_DEFAULT_REGION": plan.region,
    }
    if plan.aws_endpoint:
        values["AWS_ENDPOINT_URL"] = plan.aws_endpoint
    # aws_default is the execution role, whatever a connection store holds (as on MWAA).
    values["AIRFLOW_CONN_AWS_DEFAULT"] = "aws://"
    values.update(mwaa_endpoint(plan))
    values.update(task_logging(plan))
    values.update(auth(plan))
    if plan.major >= 3:
        values.update(
            {
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
                "AIRFLOW__API__BASE_URL": public_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets["jwt_secret"],
                "AIRFLOW__API_AUTH__JWT_ALGORITHM": "HS256",
                "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "86400",
            }
        )
    else:
        values.update(
            {
                "AIRFLOW__WEBSERVER__BASE_URL": public_url,
                # The web doors' X-Forwarded-Proto/Host say how the browser reached it.
                "AIRFLOW__WEBSERVER__ENABLE_PROXY_FIX": "True",
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(api_port),
                "AIRFLOW__WEBSERVER__WORKERS": "1",
            }
        )
    return values


def mwaa_endpoint(plan: RuntimePlan) -> dict[str, str]:
    """Tasks reach Airdock's MWAA API (the Amazon provider's MwaaHook, boto3's `mwaa`) as the
    execution role. botocore prefixes MWAA's host with `env.`/`api.`, which no loopback name
    resolves: the variable turns that off where botocore knows it (1.37+), and aws_default's
    client config where it does not (2.x's locks)."""
    if not plan.mwaa_endpoint:
        return {}
    connection = {"conn_type": "aws", "extra": {"config_kwargs": {"inject_host_prefix": False}}}
    return {
        "AWS_ENDPOINT_URL_MWAA": plan.mwaa_endpoint,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
    }


def task_logging(plan: RuntimePlan) -> dict[str, str]:
    """Task logs go to the Task log group through Airflow's CloudWatch remote logging, so the
    Airflow UI reads them back from there, as on MWAA."""
    config = plan.logging.get("TaskLogs") or {}
    if not config.get("Enabled"):
        return {"AIRFLOW__LOGGING__REMOTE_LOGGING": "False"}
    group = f"arn:aws:logs:{plan.region}:{plan.account_id}:log-group:airflow-{plan.name}-Task"
    return {
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"cloudwatch://{group}",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
    }


def mwaa_variables(plan: RuntimePlan, component: str) -> dict[str, str]:
    """The variables MWAA's containers carry (the startup script saw the same ones)."""
    return {
        "MWAA_AIRFLOW_COMPONENT": component,
        "MWAA_COMMAND": component,
        "AWS_EXECUTION_ENV": f"Amazon_MWAA_{plan.airflow_version.replace('.', '')}",
        "AIRFLOW_ENV_NAME": plan.name,
        "AIRFLOW_ENV_ID": plan.env_id,
        "AIRFLOW_VERSION": plan.airflow_version,
        "CUSTOMER_ACCOUNT_ID": plan.account_id,
    }


def component_environment(
    plan: RuntimePlan,
    mwaa_component: str,
    *,
    startup_exports: dict[str, str],
    api_port: int,
    secrets: dict[str, str],
    aws_config: Path,
    aws_credentials: Path,
) -> dict[str, str]:
    venv_bin = plan.venv / "bin"
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(plan.workspace / "home"),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(plan.venv),
    }
    env.update(opinionated(plan))
    env.update({option_variable(k): str(v) for k, v in plan.options.items()})
    env.update(startup_exports)
    env.update(mwaa_variables(plan, mwaa_component))
    env.update(
        essentials(
            plan,
            api_port=api_port,
            secrets=secrets,
            aws_config=aws_config,
            aws_credentials=aws_credentials,
        )
    )
    return env


def _plain_http(endpoint: str | None) -> bool:
    return bool(endpoint) and str(endpoint).startswith("http://")
