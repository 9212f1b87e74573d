"""promptlab: notebook-first prompt experimentation, offline by default.

>>> import promptlab as pl
>>> lab = pl.Lab()                                   # ./promptlab.db, or $PROMPTLAB_DB
>>> lab.actions.create("writer", prompt="Fix: {{text}}", model="sim:extractive")
>>> lab.actions.prompt("writer", "Teh cat sat.").msg
"""

__version__ = "0.1.0"

from .actions import Action
from . import errors
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
    RunError,
    RunFailedError,
    RunInProgressError,
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

# Heavier parts load on first use, so `import promptlab` stays fast in scripts and CI:
# pl.charts (plotly), pl.widgets (ipywidgets), pl.evaluators, pl.write_report, pl.Flow,
# pl.format_search_results, pl.stats (scipy, statsmodels).
_LAZY = {
    "charts": ("promptlab.charts", None),
    "widgets": ("promptlab.widgets", None),
    "evaluators": ("promptlab.experiments.evaluators", None),
    "stats": ("promptlab.stats", None),
    "write_report": ("promptlab.report", "write_report"),
    "format_search_results": ("promptlab.contexts", "format_search_results"),
    "Flow": ("promptlab.flows", "Flow"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'promptlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "charts",
    "stats",
    "widgets",
    "evaluators",
    "write_report",
    "format_search_results",
    "Flow",
    *errors.__all__,
]
