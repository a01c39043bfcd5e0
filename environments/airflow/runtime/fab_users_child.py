"""Create or reset one FAB user; runs with an environment's own Airflow (2.x or 3.x).

Copied next to the environment's AIRFLOW_HOME and run as the environment, after `airflow db
migrate`. It reads the user from AIRDOCK_FAB_USERNAME, AIRDOCK_FAB_PASSWORD, AIRDOCK_FAB_EMAIL
and AIRDOCK_FAB_ROLE, so the password is never on a command line, and prints nothing secret.
This file imports nothing of Airdock's.
"""

import os
import sys

try:  # Airflow 3.x, and 2.x with a recent FAB provider
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
except ImportError:  # older 2.x
    from airflow.utils.cli_app_builder import get_application_builder


def _providers_configuration() -> None:
    """Load the providers' option defaults, as the `airflow` command does and a plain script
    does not: on 3.x FAB's own section ([fab] config_file, ...) comes from its provider."""
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()


def _database_ready() -> None:
    """On 3.x the FAB tables belong to the FAB provider; create them if `db migrate` did not."""
    import airflow

    if int(airflow.__version__.split(".", 1)[0]) < 3:
        return  # 2.x migrates FAB's tables with its own
    from airflow.providers.fab.auth_manager.models.db import FABDBManager
    from airflow.utils.session import create_session

    with create_session() as session:
        FABDBManager(session).initdb()


def main() -> int:
    username = os.environ["AIRDOCK_FAB_USERNAME"]
    password = os.environ["AIRDOCK_FAB_PASSWORD"]
    email = os.environ["AIRDOCK_FAB_EMAIL"]
    role_name = os.environ["AIRDOCK_FAB_ROLE"]
    _providers_configuration()
    _database_ready()
    with get_application_builder() as appbuilder:
        manager = appbuilder.sm
        role = manager.find_role(role_name)
        if role is None:
            manager.sync_roles()
            role = manager.find_role(role_name)
        if role is None:
            print(f"FAB has no role {role_name}", file=sys.stderr)
            return 2
        user = manager.find_user(username=username)
        if user is None:
            created = manager.add_user(username, "Airdock", "service", email, role, password)
            if not created:
                print(f"FAB did not create user {username}", file=sys.stderr)
                return 1
            print(f"created FAB user {username} ({role_name})")
            return 0
        user.roles = [role]
        manager.update_user(user)
        manager.reset_password(user.id, password)
        print(f"reset FAB user {username} ({role_name})")
        return 0


if __name__ == "__main__":
    sys.exit(main())
