"""Actions: versioned prompt templates with a model config, deployed to environments, and run.

The seed's "Actions" chapter, locally::

    act = lab.actions.create("writer", system="You are a helpful writing assistant.",
                             prompt="Review this content ...\\n{{task}}\\n======\\n{{content}}",
                             model="sim:extractive", temperature=0.2)
    r = lab.actions.prompt("writer", {"task": "Fix typos", "content": "Teh cat"})
    r.msg, r.guid, r.usage, r.cost_usd

Planning a call (resolving the version, rendering messages, session memory, files, the cache
key) is plain functions here; running it goes through the Lab's execution seam
(``promptlab.engine``); every call, including a failed one, leaves exactly one generation row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._files import read_yaml_mapping, validation_problems
from ._twins import async_twin
from .checks import items, one_of, user_id, version_or_none
from .errors import ConfigError, InvalidInputError, NotFoundError
from .generations import Generation
from .providers.base import ChatRequest, Completion
from .providers.content import user_message
from .store import utcnow
from .templates import ChatTemplate

if TYPE_CHECKING:  # pragma: no cover
    from .lab import Lab

STANDARD_ENVIRONMENTS = ("Production", "Staging", "Preview")
DEFAULT_ENVIRONMENT = "Production"
PARAM_NAMES = ("temperature", "max_tokens", "top_p", "seed", "stop", "extra_body")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$")


def normalize_environment(environment: str | None) -> str:
    """``"production"`` -> ``"Production"``; custom names are kept as given."""
    if environment is None:
        return DEFAULT_ENVIRONMENT
    if not isinstance(environment, str) or not environment.strip() or len(environment) > 100:
        raise ConfigError(f"invalid environment name {environment!r}")
    for standard in STANDARD_ENVIRONMENTS:
        if environment.strip().lower() == standard.lower():
            return standard
    return environment.strip()


@dataclass(frozen=True)
class Action:
    """One version of an action. Versions are immutable; ``update`` makes a new one."""

    guid: str
    name: str
    version: int
    version_guid: str
    model: str
    system: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    description: str | None = None
    note: str | None = None
    deployments: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def template(self) -> ChatTemplate:
        return ChatTemplate(system=self.system, prompt=self.prompt, messages=self.messages)

    @property
    def variables(self) -> list[str]:
        """Template variables in order of first use (a bound context's variable excluded)."""
        bound = self.context.get("variable", "context") if self.context else None
        return [v for v in self.template.variables if v != bound]

    @property
    def environments(self) -> list[str]:
        """Environments this version is deployed to."""
        return sorted(env for env, v in self.deployments.items() if v == self.version)

    @property
    def temperature(self) -> float | None:
        return self.params.get("temperature")

    @property
    def max_tokens(self) -> int | None:
        return self.params.get("max_tokens")

    def to_spec(self) -> dict[str, Any]:
        """The action as an action-file dict (what ``save`` writes)."""
        spec: dict[str, Any] = {"name": self.name}
        if self.description:
            spec["description"] = self.description
        spec["model"] = self.model
        for key in ("system", "prompt", "messages"):
            if getattr(self, key):
                spec[key] = getattr(self, key)
        spec.update({k: v for k, v in self.params.items() if v is not None})
        if self.context:
            spec["context"] = self.context
        return spec


class ActionSpec(BaseModel):
    """An action file (YAML), validated."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    model: str | None = None
    system: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    @field_validator("messages")
    @classmethod
    def _messages_have_role_and_content(cls, value):
        for i, message in enumerate(value or []):
            if set(message) - {"role", "content"} or "role" not in message or "content" not in message:
                raise ValueError(f"messages[{i}] must have exactly 'role' and 'content'")
            if message["role"] not in ("system", "user", "assistant"):
                raise ValueError(f"messages[{i}].role must be system, user or assistant")
        return value


def _spec_error(source: str, exc: ValidationError) -> ConfigError:
    return ConfigError(f"invalid action {source}: {validation_problems(exc)}")


def validate_version_fields(fields_: Mapping[str, Any], source: str = "arguments") -> dict[str, Any]:
    """Check action fields with the same rules as action files; returns the clean values."""
    try:
        spec = ActionSpec(name="_", **fields_)
    except ValidationError as exc:
        raise _spec_error(source, exc) from None
    data = spec.model_dump(exclude={"name"}, exclude_unset=True)
    if "prompt" in data or "system" in data or "messages" in data:
        ChatTemplate(system=data.get("system"), prompt=data.get("prompt"),
                     messages=data.get("messages")).variables  # parse now: syntax errors early
    return data


# -- planning: pure functions ------------------------------------------------------------


def input_variables(action: Action, input: Any) -> tuple[dict[str, Any], str | None]:
    """Split the seed's input (a dict of variables or a plain string) into (variables, user text).

    A string fills the template's single variable, or becomes the user message when the
    template has none.
    """
    if input is None:
        return {}, None
    if isinstance(input, Mapping):
        return dict(input), None
    if isinstance(input, str):
        names = action.variables
        if len(names) == 1:
            return {names[0]: input}, None
        if not names:
            return {}, input
        raise InvalidInputError(
            f"action {action.name!r} has variables {names}; pass a dict of them, not a string")
    raise InvalidInputError(f"input must be a dict of variables or a string, not {type(input).__name__}")


def request_input(input: Any, *, messages: Any = None, files: Any = None) -> Any:
    """The input a call renders. An empty (or blank) string next to ``messages`` or ``files`` is
    no input: the seed's multi-modal example sends ``"input": ""`` with its messages, and that
    must not add an empty user message. The one rule for the Python API (the engine's planning)
    and the gateway alike.

    >>> request_input("", messages=[{"role": "user", "content": "What is in this image?"}]) is None
    True
    """
    if isinstance(input, str) and not input.strip() and (messages or files):
        return None
    return input


def _with_files(message: dict[str, Any], files: Sequence[Any]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, list):
        return {**message, "content": content + user_message("", files)["content"][1:]}
    return {**message, "content": user_message(content, files)["content"]}


def convert_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The seed's request ``messages`` (each may carry ``files``) as chat messages."""
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise InvalidInputError(f"messages[{i}] must be a dict with 'role' and 'content'")
        files = message.get("files")
        clean = {"role": message["role"], "content": message.get("content", "")}
        out.append(_with_files(clean, files) if files else clean)
    return out


@dataclass(frozen=True)
class Turn:
    """The rendered messages of one call, split by where they came from."""

    system: list[dict[str, Any]]
    history: list[dict[str, Any]]
    new: list[dict[str, Any]]  # this turn's messages: what a session remembers

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.system + self.history + self.new


def build_turn(action: Action, variables: Mapping[str, Any], user_text: str | None = None,
               history: Sequence[Mapping[str, Any]] = (), files: Sequence[Any] | None = None,
               messages: Sequence[Mapping[str, Any]] | None = None) -> Turn:
    """Render an action's template into the messages to send. Raises MissingVariablesError."""
    rendered = action.template.render(variables)
    # The system message and the few-shot ``messages`` are the fixed part of every call (before
    # the conversation history); the rendered prompt and the caller's input are this turn's.
    fixed_count = (1 if action.system else 0) + len(action.messages or [])
    fixed, new = rendered[:fixed_count], rendered[fixed_count:]
    if user_text is not None:
        new.append({"role": "user", "content": user_text})
    if messages:
        new.extend(convert_messages(messages))
    if files:
        users = [i for i, m in enumerate(new) if m["role"] == "user"]
        if users:
            new[users[-1]] = _with_files(new[users[-1]], files)
        else:  # no text this turn: the files are the user's message, without an empty text part
            new.append({"role": "user", "content": user_message("", files)["content"][1:]})
    if not any(m["role"] == "user" for m in fixed + new):
        raise InvalidInputError(
            f"nothing to send: action {action.name!r} has no user prompt or user message and no input "
            "or messages were given")
    return Turn(system=fixed, history=[dict(m) for m in history], new=new)


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
              namespace: Any = None) -> str:
    """Stable key of a request: provider + model + rendered messages + params (+ namespace)."""
    payload = json.dumps({"model": model, "messages": messages, "params": params, "ns": namespace},
                         sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Call:
    """Everything needed to run and log one generation, decided before any I/O."""

    guid: str
    action: Action
    environment: str | None
    input: Any
    turn: Turn | None
    model: str
    provider_name: str
    provider_model: str
    params: dict[str, Any]
    streaming: bool = False
    use_cache: bool = False
    session: str | None = None
    ext_user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    variant: str | None = None
    run: str | None = None
    repeat: int | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def request(self) -> ChatRequest:
        extra = dict(self.params.get("extra_body") or {})
        if self.provider_name == "sim" and self.repeat:
            # Repeats must resample: the simulator folds the repeat index into its choice.
            extra["sim"] = {**extra.get("sim", {}), "repeat": self.repeat}
        return ChatRequest(
            model=self.provider_model, messages=self.turn.messages,
            temperature=self.params.get("temperature"), max_tokens=self.params.get("max_tokens"),
            top_p=self.params.get("top_p"), seed=self.params.get("seed"), stop=self.params.get("stop"),
            extra_body=extra or None)

    @property
    def cache_key(self) -> str:
        return cache_key(self.model, self.turn.messages, self.params, namespace=self.repeat or None)

    def row(self, **updates: Any) -> dict[str, Any]:
        """The generation row for this call (pending until updated)."""
        row = dict(
            guid=self.guid, status="pending", action_guid=self.action.guid,
            action_name=self.action.name, action_version=self.action.version,
            environment=self.environment, input=self.input,
            messages=self.turn.messages if self.turn else None, model=self.model,
            params={k: v for k, v in self.params.items() if k != "extra_body"} or None,
            cached=False, streaming=self.streaming, session_guid=self.session,
            ext_user_id=self.ext_user_id, metadata=self.metadata or None,
            experiment_guid=self.experiment, variant=self.variant, run_guid=self.run,
            repeat=self.repeat, created_at=self.created_at,
        )
        row.update(updates)
        return row


def completion_fields(completion: Completion, cost: float | None, cached: bool) -> dict[str, Any]:
    return dict(status="done", output=completion.text, prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens, cost_usd=cost,
                latency_ms=completion.latency_ms, ttft_ms=completion.ttft_ms,
                finish_reason=completion.finish_reason, cached=cached, finished_at=utcnow())


def error_fields(exc: BaseException) -> dict[str, Any]:
    return dict(status="error", error_type=type(exc).__name__, error=str(exc), finished_at=utcnow())


# -- the resource ------------------------------------------------------------------------


class Actions:
    """``lab.actions``: create, version, deploy and run actions."""

    def __init__(self, lab: "Lab", cache_seconds: float = 1.0):
        self._lab = lab
        # Resolved versions, briefly: a run of calls reads the store once a second instead of
        # once a call. Changes made through this Lab clear it at once; another process's
        # deploy is seen within ``cache_seconds``.
        self.cache_seconds = cache_seconds
        self._resolved: dict[tuple[Any, ...], tuple[float, Action]] = {}

    # definitions ----------------------------------------------------------------------------

    def create(self, name: str, *, system: str | None = None, prompt: str | None = None,
               messages: list[dict[str, Any]] | None = None, model: str | None = None,
               temperature: float | None = None, max_tokens: int | None = None,
               top_p: float | None = None, seed: int | None = None, stop: list[str] | None = None,
               extra_body: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
               description: str | None = None) -> Action:
        """Create an action (version 1, deployed to Production).

        >>> lab.actions.create("summarize", prompt="Summarize: {{text}}", model="sim:extractive")
        """
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"invalid action name {name!r}: use letters, digits, space, _ . - "
                              "(up to 200 characters)")
        values = dict(system=system, prompt=prompt, messages=messages,
                      model=model or self._lab.default_model, temperature=temperature,
                      max_tokens=max_tokens, top_p=top_p, seed=seed, stop=stop,
                      extra_body=extra_body, context=context)
        clean = validate_version_fields({k: v for k, v in values.items() if v is not None})
        if not clean.get("prompt") and not clean.get("system") and not clean.get("messages"):
            raise ConfigError(f"action {name!r} needs a prompt, a system message or messages")
        self._lab.providers.parse(clean["model"])  # unknown provider: fail at definition time
        self._lab.store.create_action(name, description, _version_row(clean))
        self._resolved.clear()
        return self.get(name)

    def update(self, action: str, *, deploy: str | Sequence[str] | None = None,
               note: str | None = None, **changes: Any) -> Action:
        """Make a new immutable version from the latest with ``changes`` applied.

        Environments keep serving the versions deployed to them until you deploy the new one
        (``deploy="Production"`` here, or ``lab.actions.deploy``). Offline experiments and
        ``version="latest"`` use it at once.

        >>> lab.actions.update("writer", temperature=0.7)          # version 2
        >>> lab.actions.deploy("writer", version=2, environment="Preview")
        """
        unknown = set(changes) - {"system", "prompt", "messages", "model", "context", *PARAM_NAMES}
        if unknown:
            raise ConfigError(f"unknown action field(s): {', '.join(sorted(unknown))}")
        current = self.get(action, version="latest")
        merged = {"system": current.system, "prompt": current.prompt, "messages": current.messages,
                  "model": current.model, "context": current.context, **current.params, **changes}
        clean = validate_version_fields({k: v for k, v in merged.items() if v is not None})
        self._lab.providers.parse(clean["model"])
        environments = items(deploy or [], "deploy", allow_str=True)
        environments = [normalize_environment(e) for e in environments]
        row = _version_row(clean)
        row["note"] = note
        number = self._lab.store.add_version(current.guid, row, deploy_to=environments)
        self._resolved.clear()
        return self.get(current.guid, version=number)

    def deploy(self, action: str, version: int | None = None,
               environment: str = DEFAULT_ENVIRONMENT) -> Action:
        """Point ``environment`` at ``version`` (latest when None)."""
        current = self.get(action, version="latest" if version is None else version)
        self._lab.store.deploy(current.guid, normalize_environment(environment), current.version)
        self._resolved.clear()
        return self.get(current.guid, version=current.version)

    def get(self, action: str, version: int | str | None = None,
            environment: str | None = None) -> Action:
        """An action by name, action GUID or version GUID.

        ``version``: a number or ``"latest"``; otherwise the version deployed to ``environment``
        (Production by default). A version GUID pins its own version.
        """
        if not isinstance(action, str):
            raise ConfigError(f"an action is named by its name, GUID or version GUID (a string), "
                              f"not {type(action).__name__}")
        version = version_or_none(version)
        key = (action, version, environment)
        hit = self.cached(action, version, environment)
        if hit is not None:
            return hit
        resolved = self._resolve(action, version, environment)
        if self.cache_seconds > 0:
            if len(self._resolved) > 1024:
                self._resolved.clear()
            self._resolved[key] = (time.monotonic() + self.cache_seconds, resolved)
        return resolved

    def cached(self, action: str, version: int | str | None = None,
               environment: str | None = None) -> Action | None:
        """``get``'s answer if it was resolved less than ``cache_seconds`` ago, else None (no
        store read)."""
        try:
            hit = self._resolved.get((action, version, environment))
        except TypeError:  # unhashable: not a name; get() says so
            return None
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _resolve(self, action: str, version: int | str | None, environment: str | None) -> Action:
        def pick(row: Mapping[str, Any], deployments: Mapping[str, int]) -> int | None:
            wanted = version
            if row.get("pinned_version") is not None and wanted is None and environment is None:
                wanted = row["pinned_version"]
            if wanted == "latest":
                return None
            if wanted is not None:
                return int(wanted)
            env = normalize_environment(environment)
            if env not in deployments:
                raise NotFoundError(
                    "deployment", f"{row['name']}@{env}",
                    f"deployed to: {sorted(deployments) or 'nothing'}; "
                    f"use lab.actions.deploy({row['name']!r}, version=..., environment={env!r})")
            return deployments[env]

        found = self._lab.store.resolve_action(action, pick)
        if found is None:
            names = [a["name"] for a in self._lab.store.list_actions()]
            raise NotFoundError("action", action, f"known actions: {names}" if names else "no actions yet")
        row, deployments, version_row = found
        if version_row is None:
            raise NotFoundError("version", f"{row['name']} v{version}")
        return _action_from_rows(row, version_row, deployments)

    def versions(self, action: str) -> list[Action]:
        row = self._lab.store.find_action(action)
        if row is None:
            raise NotFoundError("action", action)
        deployments = self._lab.store.deployments(row["guid"])
        return [_action_from_rows(row, v, deployments) for v in self._lab.store.list_versions(row["guid"])]

    def list(self) -> list[Action]:
        """Every action at its latest version."""
        return [self.get(row["guid"], version="latest") for row in self._lab.store.list_actions()]

    def load(self, path: str | os.PathLike) -> Action:
        """Create or update an action from a YAML action file (validated)."""
        data = read_yaml_mapping(path, "action file")
        try:
            spec = ActionSpec(**data)
        except ValidationError as exc:
            raise _spec_error(f"file {os.fspath(path)!r}", exc) from None
        fields_ = spec.model_dump(exclude={"name", "description"}, exclude_none=True)
        if self._lab.store.find_action(spec.name) is None:
            return self.create(spec.name, description=spec.description, **fields_)
        return self.update(spec.name, **fields_)

    def save(self, action: str, path: str | os.PathLike, version: int | str | None = "latest") -> str:
        """Write an action version as a YAML action file; returns the path."""
        spec = self.get(action, version=version).to_spec()
        with open(path, "w") as handle:
            yaml.safe_dump(spec, handle, sort_keys=False, allow_unicode=True)
        return os.fspath(path)

    # running ------------------------------------------------------------------------------

    def get_action_prompt(self, action: str | None = None, input: Any = None, *,
                          environment: str | None = None, version: int | str | None = None,
                          session: str | None = None, metadata_filter: Mapping[str, Any] | None = None,
                          files: Sequence[Any] | None = None,
                          messages: Sequence[Mapping[str, Any]] | None = None,
                          experiment: str | None = None, experiment_guid: str | None = None,
                          ext_user_id: str | None = None,
                          extUserId: str | None = None) -> list[dict[str, Any]]:  # noqa: N803
        """The fully formatted messages a call would send, without calling a model.

        ``experiment`` (or the seed's ``experiment_guid``): the prompt of the variant the
        experiment assigns to ``ext_user_id`` (else ``session``; the first variant when neither
        is given, so the answer is reproducible); an ``action`` then names the variant to show.

        >>> lab.actions.get_action_prompt("writer", {"task": "...", "content": "..."})
        >>> lab.actions.get_action_prompt(experiment_guid=exp.guid, input={"question": "..."})
        """
        experiment = one_of(experiment, experiment_guid, "experiment", "experiment_guid")
        ext_user_id = user_id(ext_user_id, extUserId)
        if experiment is not None:
            _experiment_form(environment, version)
            _, chosen = self._lab.experiments.assign(experiment, ext_user_id=ext_user_id, session=session,
                                                     variant=action, draw=False)
            resolved = self.get(chosen.action_guid, environment=chosen.environment)
        else:
            resolved = self.get(_named(action), version=version, environment=environment)
        call = self._lab.engine.plan_sync(resolved, input, environment=environment, session=session,
                                          metadata_filter=metadata_filter, files=files, messages=messages,
                                          log_failure=False)
        return call.turn.messages

    def prompt(self, action: str | None = None, input: Any = None, *, environment: str | None = None,
               version: int | str | None = None, cache: bool = False, ext_user_id: str | None = None,
               session: str | None = None, metadata_filter: Mapping[str, Any] | None = None,
               files: Sequence[Any] | None = None, messages: Sequence[Mapping[str, Any]] | None = None,
               streaming: bool = False, async_mode: bool = False, experiment: str | None = None,
               extUserId: str | None = None) -> Generation:  # noqa: N803 (the seed's spelling)
        """Run an action and return its generation (the seed's ``msg``, ``feedback_url``, ...).

        ``ext_user_id`` (or the seed's ``extUserId``) ties the generation to your user; in a
        ``session`` the session's user is used when none is given. ``experiment``: run in that
        experiment (GUID or name), as ``lab.experiments.prompt`` does: the experiment assigns the
        variant, or ``action``, when given, must be one of its variants (manual traffic control).

        Ctrl-C stops it: the request is abandoned and logged as interrupted.

        >>> r = lab.actions.prompt("writer", {"task": "Fix typos", "content": "Teh cat"})
        >>> r.msg
        """
        ext_user_id = user_id(ext_user_id, extUserId)
        if experiment is not None:
            _experiment_form(environment, version)
            return self._lab.experiments.prompt(
                experiment, input, variant=action, ext_user_id=ext_user_id, session=session, cache=cache,
                metadata_filter=metadata_filter, files=files, messages=messages, streaming=streaming,
                async_mode=async_mode)
        engine = self._lab.engine
        call = engine.plan_sync(_named(action), input, environment=environment, version=version, cache=cache,
                                ext_user_id=ext_user_id, session=session, metadata_filter=metadata_filter,
                                files=files, messages=messages, streaming=streaming)
        return engine.blocking(engine.start(call, async_mode=async_mode))

    async def aprompt(self, action: str | None = None, input: Any = None, *, environment: str | None = None,
                      version: int | str | None = None, cache: bool = False,
                      ext_user_id: str | None = None, session: str | None = None,
                      metadata_filter: Mapping[str, Any] | None = None,
                      files: Sequence[Any] | None = None,
                      messages: Sequence[Mapping[str, Any]] | None = None, streaming: bool = False,
                      async_mode: bool = False, experiment: str | None = None,
                      extUserId: str | None = None) -> Generation:  # noqa: N803 (the seed's spelling)
        """Async twin of ``prompt``; never blocks the caller's event loop (store reads and
        retrieval run in a worker thread, the request on promptlab's loop)."""
        ext_user_id = user_id(ext_user_id, extUserId)
        if experiment is not None:
            _experiment_form(environment, version)
            return await self._lab.experiments.aprompt(
                experiment, input, variant=action, ext_user_id=ext_user_id, session=session, cache=cache,
                metadata_filter=metadata_filter, files=files, messages=messages, streaming=streaming,
                async_mode=async_mode)
        engine = self._lab.engine
        call = await engine.plan(_named(action), input, environment=environment, version=version, cache=cache,
                                 ext_user_id=ext_user_id, session=session, metadata_filter=metadata_filter,
                                 files=files, messages=messages, streaming=streaming)
        return await engine.awaiting(engine.start(call, async_mode=async_mode))

    # async twins of the other methods: awaited without blocking the caller's event loop
    acreate = async_twin(create, writes=True)
    aupdate = async_twin(update, writes=True)
    adeploy = async_twin(deploy, writes=True)
    aload = async_twin(load, writes=True)
    aget = async_twin(get)
    aversions = async_twin(versions)
    alist = async_twin(list)
    asave = async_twin(save)
    aget_action_prompt = async_twin(get_action_prompt)


def _named(action: Any) -> Any:
    if action is None:
        raise ConfigError("name the action to run (its name or GUID), or pass experiment= to let an "
                          "experiment choose")
    return action


def _experiment_form(environment: Any, version: Any) -> None:
    if environment is not None or version is not None:
        raise ConfigError("environment/version cannot be combined with experiment: each variant has its own")


def _version_row(clean: Mapping[str, Any]) -> dict[str, Any]:
    return dict(system=clean.get("system"), prompt=clean.get("prompt"), messages=clean.get("messages"),
                model=clean["model"], context=clean.get("context"), note=None,
                params={k: clean[k] for k in PARAM_NAMES if clean.get(k) is not None})


def _action_from_rows(action: Mapping[str, Any], version: Mapping[str, Any],
                      deployments: Mapping[str, int]) -> Action:
    return Action(guid=action["guid"], name=action["name"], version=version["version"],
                  version_guid=version["guid"], model=version["model"], system=version["system"],
                  prompt=version["prompt"], messages=version["messages"],
                  params=dict(version["params"] or {}), context=version["context"],
                  description=action["description"], note=version["note"],
                  deployments=dict(deployments), created_at=version["created_at"])
