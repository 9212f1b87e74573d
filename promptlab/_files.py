"""Reading the YAML files users write (action files, experiment files) with clear errors."""

from __future__ import annotations

import os
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError


def read_yaml_mapping(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """The mapping in a YAML file; ConfigError naming the file (and ``kind``) otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"the {kind} must be a path, not {type(path).__name__}")
    name = os.fspath(path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"cannot read {kind} {name!r}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {kind} {name!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{kind} {name!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{kind} {name!r} must be a mapping of fields")
    return data


def validation_problems(exc: ValidationError) -> str:
    """pydantic's errors as one line: ``field.path: message; ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                     for err in exc.errors())
