"""The doors into an environment's Airflow, served over HTTPS at its own loopback address.

- `https://<address>/...` reaches the environment's Airflow UI and API (proxy);
- `POST /aws_mwaa/cli` runs an allowed Airflow CLI command for a CLI-token holder (cli_door);
- `/aws_mwaa/aws-console-sso` turns a web-login token into a signed-in browser (web_login).

Certificates chain to the data dir's local CA (certificates). controlplane.server.web_doors
runs all of it as one supervised part.
"""
