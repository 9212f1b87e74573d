"""promptlab: notebook-first prompt experimentation, offline by default.

>>> import promptlab as pl
>>> lab = pl.Lab()                                   # ./promptlab.db, or $PROMPTLAB_DB
>>> lab.actions.create("writer", prompt="Fix: {{text}}", model="sim:extractive")
>>> lab.actions.prompt("writer", "Teh cat sat.").msg
"""

__version__ = "0.1.0"

from .actions import Action
from .errors import (
    AuthenticationError,
    ConfigError,
    InvalidInputError,
    MissingVariablesError,
    NotFoundError,
    PromptlabError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    SandboxViolationError,
    StoreError,
    TemplateError,
    TemplateSyntaxError,
)
from .generations import Generation, TokenStream
from .lab import Lab
from .providers import ProviderRegistry, image_part
from .sessions import Session
from .templates import ChatTemplate, Template

__all__ = [
    "__version__",
    "Lab",
    "Action",
    "Generation",
    "TokenStream",
    "Session",
    "Template",
    "ChatTemplate",
    "ProviderRegistry",
    "image_part",
    "PromptlabError",
    "TemplateError",
    "MissingVariablesError",
    "TemplateSyntaxError",
    "SandboxViolationError",
    "ConfigError",
    "InvalidInputError",
    "NotFoundError",
    "StoreError",
    "ProviderError",
    "ProviderConnectionError",
    "ProviderTimeoutError",
    "AuthenticationError",
    "RateLimitError",
    "ProviderServerError",
    "ProviderRequestError",
]
