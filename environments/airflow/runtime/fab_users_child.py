"""Create or reset one FAB user; runs with an environment's own Airflow (2.x or 3.x).

Copied next to the environment's AIRFLOW_HOME and run as the environment, after `airflow db
migrate`, or with AIRDOCK_MIGRATE_FIRST=1 running that command itself first, in this process
(a fresh database: one start of Airflow instead of two). It reads the user from
AIRDOCK_FAB_USERNAME, AIRDOCK_FAB_PASSWORD, AIRDOCK_FAB_EMAIL and AIRDOCK_FAB_ROLE, so the
password is never on a command line, and prints nothing secret. This file imports nothing of
Airdock's.

Exit codes: 0 done, 1 FAB made no user, 2 no such role, 3 the migration failed.
"""

import os
import sys
import traceback

MIGRATION_FAILED = 3

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


def _migrate() -> bool:
    """`airflow db migrate`, through Airflow's own command line, in this process."""
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "db", "migrate"]
    try:
        airflow_main()
    except SystemExit as stop:
        if stop.code not in (None, 0):
            print(f"airflow db migrate stopped: {stop.code}", file=sys.stderr)
            return False
    except Exception:
        traceback.print_exc()
        return False
    return True


def main() -> int:
    username = os.environ["AIRDOCK_FAB_USERNAME"]
    password = os.environ["AIRDOCK_FAB_PASSWORD"]
    email = os.environ["AIRDOCK_FAB_EMAIL"]
    role_name = os.environ["AIRDOCK_FAB_ROLE"]
    if os.environ.get("AIRDOCK_MIGRATE_FIRST") == "1" and not _migrate():
        return MIGRATION_FAILED
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
