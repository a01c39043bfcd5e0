"""Each environment's Airflow as supervised local processes.

`manager.AirflowRuntime` is the one entry point: the reconciler's runtime step asks it to run an
environment's plan and waits for health; the background side of `airdock serve` starts it,
which first clears processes a killed control plane left behind, and stops it at shutdown.
Inside: `plan` (what to run), `configuration` (the environment variables MWAA's images set),
`components` (the commands), `supervisor` (one environment's processes, restarts, health),
`credentials` (the execution role's short-lived keys), `migration` (the metadata database's
schema; the database itself comes from environments.airflow.metadb), `identity` (the FAB
users Airdock acts through; environments.airflow.access uses them) and `logship` (component
logs to CloudWatch).
"""
