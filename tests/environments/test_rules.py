"""Validation against botocore's model and MWAA's own rules, without a server."""

from __future__ import annotations

import pytest

from environments import shapes, spec
from environments.errors import ValidationException
from environments.lifecycle import TRANSITIONS, Event, Status, TransitionRefused, next_status
from environments.pagination import PageTokens
from tests.conftest import create_params


def test_model_constraints_are_enforced():
    with pytest.raises(ValidationException) as excinfo:
        shapes.validate("CreateEnvironment", {"Name": "ok", **create_params(Schedulers=6)})
    assert (
        "Schedulers" in excinfo.value.message and "less than or equal to 5" in excinfo.value.message
    )


def test_every_problem_is_reported_once():
    params = {"Name": "9", **create_params(MaxWorkers=0, Tags={"": "x"})}
    with pytest.raises(ValidationException) as excinfo:
        shapes.validate("CreateEnvironment", params)
    assert excinfo.value.message.startswith("3 validation errors detected")


def test_tag_patterns_use_unicode_classes():
    shapes.validate(
        "TagResource",
        {
            "ResourceArn": "arn:aws:airflow:us-east-1:123456789012:environment/e",
            "Tags": {"Équipe": "données"},
        },
    )
    with pytest.raises(ValidationException):
        shapes.validate(
            "TagResource",
            {
                "ResourceArn": "arn:aws:airflow:us-east-1:123456789012:environment/e",
                "Tags": {"bad#key": "v"},
            },
        )


def test_required_members_are_required():
    with pytest.raises(ValidationException, match="DagS3Path"):
        shapes.validate(
            "CreateEnvironment",
            {"Name": "x", **{k: v for k, v in create_params().items() if k != "DagS3Path"}},
        )


def test_defaults_and_update_merge():
    created = spec.new_spec(create_params())
    updated = spec.updated_spec(created, {"EnvironmentClass": "mw1.micro"})
    assert (updated["Schedulers"], updated["MaxWorkers"], updated["MaxWebservers"]) == (1, 1, 1)
    cleared = spec.updated_spec(
        spec.new_spec(create_params(AirflowConfigurationOptions={"core.a": "1"})),
        {"AirflowConfigurationOptions": {}},
    )
    assert cleared["AirflowConfigurationOptions"] == {}


def test_minor_versions_move_in_place_but_majors_only_through_2_11():
    created = spec.new_spec(create_params(AirflowVersion="2.10.3"))
    assert spec.updated_spec(created, {"AirflowVersion": "2.11.0"})["AirflowVersion"] == "2.11.0"
    assert spec.updated_spec(created, {"AirflowVersion": "2.9.2"})["AirflowVersion"] == "2.9.2"
    with pytest.raises(ValidationException, match=r"upgrade .* 2\.10\.3 to 3\.0\.6.*2\.11\.0"):
        spec.updated_spec(created, {"AirflowVersion": "3.0.6"})
    bridge = spec.new_spec(create_params(AirflowVersion="2.11.0"))
    assert spec.updated_spec(bridge, {"AirflowVersion": "3.0.6"})["AirflowVersion"] == "3.0.6"
    three = spec.new_spec(create_params(AirflowVersion="3.0.6"))
    assert spec.updated_spec(three, {"AirflowVersion": "2.11.0"})["AirflowVersion"] == "2.11.0"
    with pytest.raises(ValidationException, match=r"Unable to downgrade .* 3\.0\.6 to 2\.10\.3"):
        spec.updated_spec(three, {"AirflowVersion": "2.10.3"})
    with pytest.raises(ValidationException, match="not supported"):
        spec.updated_spec(three, {"AirflowVersion": "3.9.9"})


def test_transitions_are_data_and_refusals_are_worded_like_mwaa():
    assert next_status(Status.AVAILABLE, Event.UPDATE_REQUESTED) is Status.UPDATING
    with pytest.raises(TransitionRefused, match="CREATE_FAILED status cannot be updated"):
        next_status(Status.CREATE_FAILED, Event.UPDATE_REQUESTED)
    with pytest.raises(TransitionRefused, match="UPDATING status cannot be deleted"):
        next_status(Status.UPDATING, Event.DELETE_REQUESTED)
    assert all(isinstance(k[0], Status) and isinstance(v, Status) for k, v in TRANSITIONS.items())


def test_page_tokens_reject_forgery_and_age():
    tokens = PageTokens(b"k" * 32, ttl=10)
    token = tokens.issue("env-a", now=1000.0)
    assert tokens.read(token, now=1005.0) == "env-a"
    with pytest.raises(ValidationException, match="expired"):
        tokens.read(token, now=1011.0)
    with pytest.raises(ValidationException, match="not valid"):
        PageTokens(b"x" * 32).read(token, now=1005.0)
    with pytest.raises(ValidationException, match="not valid"):
        tokens.read(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], now=1005.0)
