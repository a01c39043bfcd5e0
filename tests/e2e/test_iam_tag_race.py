"""The tag-on-create race: "tag only an untagged environment" is decided together with the write.

Bob may tag an environment that has no team tag yet (TagOnCreateForOwnTeam). He keeps sending
TagResource {team: b} for a name while Alice creates that environment with {team: a}. A check
made before Alice's create committed must not authorize a write after it: the service re-checks
on the row it changes, inside its compare-and-set. Alice keeps her environment every time.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from tests.e2e.iam_support import ACCOUNT, REGION, example_config, execution_role, start_iam_server

pytestmark = pytest.mark.slow

TRIES = 100
ATTACKERS = 3


@pytest.fixture(scope="module")
def race_server(tmp_path_factory):
    server = start_iam_server(tmp_path_factory.mktemp("airdock-race"), example_config())
    yield server
    server.live.stop()


def test_the_attacker_loses_the_tag_race_every_time(race_server):
    role = execution_role(race_server.live, "MWAA-Execution-race")
    params = {
        "ExecutionRoleArn": role,
        # A bucket that does not exist: each environment fails fast in the background, which
        # keeps a hundred of them cheap; the race is over long before.
        "SourceBucketArn": "arn:aws:s3:::airdock-race-no-such-bucket",
        "DagS3Path": "dags",
        "NetworkConfiguration": {
            "SubnetIds": ["subnet-00000001", "subnet-00000002"],
            "SecurityGroupIds": ["sg-00000001"],
        },
    }
    alice = race_server.user("alice")
    attackers = [race_server.user("bob") for _ in range(ATTACKERS)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    for attempt in range(TRIES):
        name = f"a-race-{attempt}"
        arn = f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{name}"
        stop = threading.Event()

        def attack(client, arn: str = arn, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    client.tag_resource(ResourceArn=arn, Tags={"team": "b"})
                    code = "Allowed"
                except ClientError as err:
                    code = err.response["Error"]["Code"]
                with lock:
                    outcomes[code] += 1

        threads = [threading.Thread(target=attack, args=(c,)) for c in attackers]
        for thread in threads:
            thread.start()
        try:
            alice.create_environment(Name=name, Tags={"team": "a"}, **params)
            # Keep attacking for a few more rounds after the create was acknowledged.
            seen = sum(outcomes.values())
            while sum(outcomes.values()) < seen + 3 * ATTACKERS:
                stop.wait(0.005)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        tags = alice.list_tags_for_resource(ResourceArn=arn)["Tags"]
        assert tags.get("team") == "a", f"try {attempt}: bob took {name}: {tags}"

    # Every attempt was refused one way or the other; none was let through.
    assert outcomes["Allowed"] == 0, outcomes
    assert outcomes["AccessDeniedException"] > 0, outcomes
