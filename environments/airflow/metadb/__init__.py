"""Airflow's metadata databases: one PostgreSQL database per environment.

`embedded` runs a PostgreSQL server of Airdock's own under the data dir (the default);
`databases` creates and drops each environment's database and role on that server or on an
external one (`--airflow-database-url`).
"""
