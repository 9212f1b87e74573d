"""The public API: `promptlab.__all__` is pinned, every name resolves, and import stays light."""

from __future__ import annotations

import subprocess
import sys

import promptlab as pl

PUBLIC = [
    "__version__", "Lab", "Action", "Generation", "TokenStream", "Session", "Template", "ChatTemplate",
    "ProviderRegistry", "image_part", "charts", "widgets", "evaluators", "write_report",
    "format_search_results", "Flow",
    "PromptlabError", "TemplateError", "MissingVariablesError", "TemplateSyntaxError",
    "SandboxViolationError", "ConfigError", "InvalidInputError", "NotFoundError", "StoreError",
    "RunError", "RunInProgressError", "RunFailedError",
    "ProviderError", "ProviderConnectionError", "ProviderTimeoutError", "AuthenticationError",
    "RateLimitError", "ProviderServerError", "ProviderRequestError",
]


def test_all_is_pinned():
    assert sorted(pl.__all__) == sorted(PUBLIC)


def test_every_public_name_resolves():
    for name in pl.__all__:
        assert getattr(pl, name) is not None, name


def test_every_error_is_a_promptlab_error():
    errors = [getattr(pl, n) for n in PUBLIC if n.endswith("Error")]
    assert all(issubclass(e, pl.PromptlabError) for e in errors)


def test_import_does_not_load_heavy_modules():
    code = ("import sys, promptlab; heavy = [m for m in ('openai', 'plotly', 'ipywidgets', 'pandas', "
            "'scipy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
