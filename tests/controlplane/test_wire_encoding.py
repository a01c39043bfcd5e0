"""Response bodies: compact JSON, including what the fast encoder refuses."""

from __future__ import annotations

import json

from controlplane.wire import encode_json, json_response


def test_responses_are_compact_json():
    payload = {"Environment": {"Name": "e1", "MaxWorkers": 10, "CreatedAt": 1700000000.123}}
    body = encode_json(payload)
    assert b" " not in body
    assert json.loads(body) == payload


def test_integers_beyond_64_bits_are_still_written():
    # A REST API answer from Airflow, say, may carry them; the standard library writes them.
    payload = {"RestApiResponse": {"n": 2**70}}
    assert json.loads(encode_json(payload)) == payload
    response = json_response(payload)
    assert json.loads(response.body) == payload
    assert response.headers["x-amzn-RequestId"]
