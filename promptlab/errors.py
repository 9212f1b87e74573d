"""promptlab's one error tree.

Every error promptlab raises on purpose is a ``PromptlabError``; catch that to catch them all::

    PromptlabError
    ├── TemplateError                 a prompt template cannot be rendered
    │   ├── MissingVariablesError     variables the template uses were not given (.missing)
    │   ├── TemplateSyntaxError       the template text does not parse (.lineno)
    │   └── SandboxViolationError     the template tried to reach outside the sandbox
    ├── ConfigError                   an invalid argument, action file or settings value
    ├── InvalidInputError             bad user data: rating, issue tag, filter, dataset row (.row)
    ├── NotFoundError                 no action / version / generation / session / ... by that name
    ├── StoreError                    the database refused or is unreachable
    ├── RunError                      an experiment run cannot start or go on (.run_guid)
    │   ├── RunInProgressError        another live process holds the run (.owner)
    │   └── RunFailedError            the run stopped early: a deterministic error, a provider
    │                                 that stays down (.cause); resume after fixing it
    └── ProviderError                 a model provider failed (.provider, .status_code)
        ├── ProviderConnectionError   the endpoint could not be reached
        │   └── ProviderTimeoutError  the request timed out
        ├── AuthenticationError       401/403: missing or wrong API key
        ├── RateLimitError            429 after all retries (.retry_after)
        ├── ProviderServerError       5xx after all retries
        └── ProviderRequestError      other 4xx: bad request, context length, unknown model

Messages name the offending thing (the variable, the action, the row number) and never contain
secrets such as API keys.
"""

from __future__ import annotations

from typing import Any, Sequence


class PromptlabError(Exception):
    """Base of every error promptlab raises deliberately."""


class TemplateError(PromptlabError):
    """A prompt template cannot be rendered."""


class MissingVariablesError(TemplateError):
    """The template uses variables that were not supplied.

    ``.missing`` lists every missing name, in order of first use in the template.
    """

    def __init__(self, missing: Sequence[str], template_name: str | None = None):
        self.missing = list(missing)
        self.template_name = template_name
        where = f" in template {template_name!r}" if template_name else ""
        names = ", ".join(repr(m) for m in self.missing)
        plural = "s" if len(self.missing) != 1 else ""
        super().__init__(f"missing template variable{plural}{where}: {names}")


class TemplateSyntaxError(TemplateError):
    """The template text does not parse."""

    def __init__(self, message: str, lineno: int | None = None):
        self.lineno = lineno
        where = f" (line {lineno})" if lineno else ""
        super().__init__(f"template syntax error{where}: {message}")


class SandboxViolationError(TemplateError):
    """The template tried to access something the sandbox forbids (e.g. ``__class__``)."""


class ConfigError(PromptlabError):
    """An invalid argument, action file or configuration value."""


class InvalidInputError(PromptlabError):
    """Bad user data: a rating, an issue tag, a metadata filter, a dataset row.

    ``.row`` is the 1-based row number when the error comes from a dataset file.
    """

    def __init__(self, message: str, row: int | None = None):
        self.row = row
        super().__init__(f"row {row}: {message}" if row is not None else message)


class NotFoundError(PromptlabError, LookupError):
    """No object of that kind with that name or GUID."""

    def __init__(self, kind: str, key: Any, hint: str | None = None):
        self.kind = kind
        self.key = key
        message = f"no {kind} {key!r}"
        super().__init__(f"{message}; {hint}" if hint else message)


class StoreError(PromptlabError):
    """The database refused an operation or cannot be reached."""


class RunError(PromptlabError):
    """An experiment run cannot start or go on. ``.run_guid`` names the run."""

    def __init__(self, message: str, run_guid: str | None = None):
        self.run_guid = run_guid
        super().__init__(message)


class RunInProgressError(RunError):
    """Another live process is running these cells of the run (it holds the run's lease).
    ``.owner`` describes it (host and process id)."""

    def __init__(self, message: str, run_guid: str | None = None, owner: str | None = None):
        self.owner = owner
        super().__init__(message, run_guid)


class RunFailedError(RunError):
    """The run stopped before its end, and said why: its first cells all failed the same
    deterministic way (a missing template variable, an unknown model, a missing or rejected API
    key), or its provider stopped answering. ``.cause`` is the underlying error, if any."""

    def __init__(self, message: str, run_guid: str | None = None, cause: BaseException | None = None):
        self.cause = cause
        super().__init__(message, run_guid)


class ProviderError(PromptlabError):
    """A model provider failed. ``.provider`` names it; ``.status_code`` is the HTTP status if any."""

    def __init__(self, message: str, provider: str | None = None, status_code: int | None = None):
        self.provider = provider
        self.status_code = status_code
        prefix = f"[{provider}] " if provider else ""
        super().__init__(prefix + message)


class ProviderConnectionError(ProviderError):
    """The provider's endpoint could not be reached."""


class ProviderTimeoutError(ProviderConnectionError):
    """The request to the provider timed out."""


class AuthenticationError(ProviderError):
    """The provider rejected the API key (401/403), or none was configured."""


class RateLimitError(ProviderError):
    """The provider kept answering 429 after all retries. ``.retry_after`` is its last hint in seconds."""

    def __init__(self, message: str, provider: str | None = None, status_code: int | None = 429,
                 retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=status_code)


class ProviderServerError(ProviderError):
    """The provider answered 5xx after all retries."""


class ProviderRequestError(ProviderError):
    """The provider rejected the request (4xx other than auth/rate limit): bad parameters,
    context length exceeded, unknown model."""


__all__ = [
    "PromptlabError",
    "TemplateError",
    "MissingVariablesError",
    "TemplateSyntaxError",
    "SandboxViolationError",
    "ConfigError",
    "InvalidInputError",
    "NotFoundError",
    "StoreError",
    "RunError",
    "RunInProgressError",
    "RunFailedError",
    "ProviderError",
    "ProviderConnectionError",
    "ProviderTimeoutError",
    "AuthenticationError",
    "RateLimitError",
    "ProviderServerError",
    "ProviderRequestError",
]
