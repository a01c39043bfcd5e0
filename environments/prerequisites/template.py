"""Finding and reading the prerequisites template (CloudFormation YAML, short-form intrinsics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from environments.prerequisites.errors import InfraError

TEMPLATE_FILE = "prerequisites.yaml"


def find_template(explicit: Path | None = None) -> Path:
    """The template to deploy: the given path, else infra/ of the source tree we run from."""
    if explicit is not None:
        if not explicit.is_file():
            raise InfraError(f"template {explicit} does not exist")
        return explicit
    # An editable install or a checkout; a wheel carries no infra/ folder.
    candidate = Path(__file__).resolve().parents[2] / "infra" / TEMPLATE_FILE
    if candidate.is_file():
        return candidate
    raise InfraError(
        f"cannot find infra/{TEMPLATE_FILE} next to the installed package ({candidate}); "
        "run from an Airdock checkout or pass --template PATH"
    )


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !Sub, !GetAtt a.b, ...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def parse_template(body: str) -> dict[str, Any]:
    try:
        parsed = yaml.load(
            body, Loader=_TemplateLoader
        )  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        raise InfraError(f"the template is not valid YAML: {err}") from err
    if not isinstance(parsed, dict) or "Resources" not in parsed:
        raise InfraError("the template has no Resources section")
    return parsed
