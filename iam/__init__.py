"""Airdock's IAM library: policy grammar, matching, conditions, evaluation, SigV4 verification
and the principal directory. No web framework, no database, no AWS client: the one outside
dependency is botocore's SigV4 signer, used by :mod:`iam.sigv4` alone (pyproject.toml's
import contracts hold all of this).

Typical server use::

    directory = Directory.from_mapping(yaml_data, default_account_id=acct).with_admin(akid, sk)
    verified = verify_request(method, raw_target, headers, body, directory.lookup_secret)
    principal = directory.principal_for_key(verified.access_key_id)
    decision = authorize(principal, "airflow:GetEnvironment", env_arn, context)
"""

from iam.authorize import access_denied_message, authorize, authorize_assume_role, build_request
from iam.cases import CASE_FORMAT, decide_case, load_cases, simulate
from iam.directory import Directory
from iam.errors import DirectoryError, PolicyError, SigV4Error
from iam.evaluate import Decision, evaluate
from iam.identities import AccessKey, Principal
from iam.policy import Policy, parse_policy
from iam.request import Caller, Request, global_context
from iam.sigv4 import VerifiedRequest, verify_request
from iam.statement import Statement

__all__ = [
    "CASE_FORMAT",
    "AccessKey",
    "Caller",
    "Decision",
    "Directory",
    "DirectoryError",
    "Policy",
    "PolicyError",
    "Principal",
    "Request",
    "SigV4Error",
    "Statement",
    "VerifiedRequest",
    "access_denied_message",
    "authorize",
    "authorize_assume_role",
    "build_request",
    "decide_case",
    "evaluate",
    "global_context",
    "load_cases",
    "parse_policy",
    "simulate",
    "verify_request",
]
