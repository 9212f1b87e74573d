"""Prompt templates: Jinja2 in a sandbox, with strict variables.

Templates use Jinja2 syntax, so the seed's ``{{variable}}`` works, and so do conditionals,
loops and filters::

    >>> Template("Hello {{name}}{% if excited %}!{% endif %}").render({"name": "Ada", "excited": True})
    'Hello Ada!'

Rules a caller must know:

- Variable names must be Python identifiers: ``{{user-id}}`` is the subtraction ``user - id``.
- ``.variables`` lists the variables a template reads from its inputs, in order of first use.
  Names bound inside the template (``{% for %}`` targets, ``{% set %}``, macro arguments,
  ``loop``) are not variables.
- A variable whose every use is guarded (``{% if x is defined %}...{{ x }}...{% endif %}``,
  ``{{ x | default("-") }}``) is optional; the rest are ``.required_variables``.
- Extra inputs are ignored. Missing ones raise ``MissingVariablesError`` naming every one.
- Inputs are data: an input containing ``{{ ... }}`` is printed as is, never evaluated.
- Templates run in Jinja's immutable sandbox: no ``_private`` or dunder attributes, no
  mutation of inputs (``items.append``), no include/import/extends. Attempts raise
  ``SandboxViolationError``, when the template is compiled if the attempt is visible in its
  text, otherwise when it is rendered. The sandbox stops escapes, not resource exhaustion.
"""

from __future__ import annotations

import functools
import re
import traceback
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import jinja2
import jinja2.meta
import jinja2.nodes as nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from promptlab.errors import (
    ConfigError,
    InvalidInputError,
    MissingVariablesError,
    SandboxViolationError,
    TemplateError,
    TemplateSyntaxError,
)

__all__ = [
    "ChatTemplate",
    "Template",
    "parse_prompt_text",
    "render_string",
    "variables",
]

# Every compiled template carries this filename; runtime errors are mapped back to template
# lines by finding it in the traceback Jinja rewrites.
_FILENAME = "<template>"

# The immutable sandbox also forbids methods that mutate lists/dicts/sets, so rendering
# cannot change the caller's inputs.
_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
# lipsum, cycler and joiner are of no use in a prompt and only widen the attack surface.
for _name in ("lipsum", "cycler", "joiner"):
    _ENV.globals.pop(_name, None)
del _name

_DEFINED_TESTS = {"defined": True, "undefined": False}
_DEFAULT_FILTERS = {"default", "d"}
_CHAT_ROLES = ("system", "developer", "user", "assistant")


# --------------------------------------------------------------------------------------
# compile + analyse (pure, cached)


class _Rejected(Exception):
    """Internal: compilation failed; turned into a promptlab error that names the template."""

    def __init__(self, kind: type[TemplateError], message: str, lineno: int | None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.lineno = lineno


@dataclass(frozen=True)
class _Compiled:
    template: jinja2.Template
    variables: tuple[str, ...]
    required: frozenset[str]


class _Scan:
    """Walks a template AST in source order.

    Jinja's own ``meta.find_undeclared_variables`` decides which names are variables (it knows
    the scoping rules exactly); this walk supplies what it lacks: order of first use, whether a
    use is guarded by ``is defined`` / ``default``, and sandbox violations visible in the text.
    """

    def __init__(self) -> None:
        self._counter = 0
        self.first_free: dict[str, int] = {}
        self.first_any: dict[str, int] = {}
        self.required_uses: set[str] = set()
        self.rejections: list[_Rejected] = []

    # -- helpers --------------------------------------------------------------------------

    def _use(self, name: str, bound: set[str], guarded: frozenset[str], optional: bool) -> None:
        self._counter += 1
        self.first_any.setdefault(name, self._counter)
        if name in bound:
            return
        self.first_free.setdefault(name, self._counter)
        if not optional and name not in guarded:
            self.required_uses.add(name)

    def _reject(self, kind: type[TemplateError], message: str, node: nodes.Node) -> None:
        self.rejections.append(_Rejected(kind, message, getattr(node, "lineno", None)))

    @staticmethod
    def _targets(node: nodes.Node) -> set[str]:
        return {n.name for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")} | (
            {node.name} if isinstance(node, nodes.Name) else set()
        )

    @staticmethod
    def _guards(expr: nodes.Node) -> tuple[frozenset[str], frozenset[str]]:
        """Names known defined when ``expr`` is true, and when it is false."""
        if (
            isinstance(expr, nodes.Test)
            and expr.name in _DEFINED_TESTS
            and isinstance(expr.node, nodes.Name)
        ):
            names = frozenset({expr.node.name})
            return (names, frozenset()) if _DEFINED_TESTS[expr.name] else (frozenset(), names)
        if isinstance(expr, nodes.Not):
            when_true, when_false = _Scan._guards(expr.node)
            return when_false, when_true
        if isinstance(expr, (nodes.And, nodes.Or)):
            lt, lf = _Scan._guards(expr.left)
            rt, rf = _Scan._guards(expr.right)
            if isinstance(expr, nodes.And):
                return lt | rt, lf & rf
            return lt & rt, lf | rf
        return frozenset(), frozenset()

    # -- walking --------------------------------------------------------------------------

    def body(self, stmts: Iterable[nodes.Node], bound: set[str], guarded: frozenset[str]) -> None:
        """Statements in sequence; ``set`` and ``macro`` bind names for what follows."""
        for stmt in stmts:
            self.visit(stmt, bound, guarded)

    def visit(self, node: nodes.Node, bound: set[str], guarded: frozenset[str]) -> None:
        if isinstance(node, (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            self._reject(
                TemplateError,
                "prompt templates cannot extend, include or import other templates",
                node,
            )
            return
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                self._use(node.name, bound, guarded, optional=False)
            return
        if isinstance(node, nodes.NSRef):  # {% set ns.attr = ... %} reads ns
            self._use(node.name, bound, guarded, optional=False)
            return
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                self._reject(
                    SandboxViolationError,
                    f"blocked by the sandbox: access to attribute {node.attr!r} "
                    "(names starting with '_' are private; for a dict key use x['key'])",
                    node,
                )
            self.visit(node.node, bound, guarded)
            return
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("__"):
                self._reject(
                    SandboxViolationError,
                    f"blocked by the sandbox: access to {arg.value!r}",
                    node,
                )
            self.generic(node, bound, guarded)
            return
        if isinstance(node, nodes.Test) and node.name in _DEFINED_TESTS and isinstance(node.node, nodes.Name):
            self._use(node.node.name, bound, guarded, optional=True)
            self.generic(node, bound, guarded, skip=(node.node,))
            return
        if isinstance(node, nodes.Filter):
            if node.name == "attr" and node.args:
                arg = node.args[0]
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("_"):
                    self._reject(
                        SandboxViolationError,
                        f"blocked by the sandbox: access to attribute {arg.value!r}",
                        node,
                    )
            if node.name in _DEFAULT_FILTERS and isinstance(node.node, nodes.Name):
                self._use(node.node.name, bound, guarded, optional=True)
                self.generic(node, bound, guarded, skip=(node.node,))
                return
            self.generic(node, bound, guarded)
            return
        if isinstance(node, nodes.If):
            when_true, when_false = self._guards(node.test)
            self.visit(node.test, bound, guarded)
            # Jinja does not scope if-bodies, but a conditional {% set %} must not hide the
            # variable from later uses, so each branch binds into a copy.
            self.body(node.body, set(bound), guarded | when_true)
            self.body(node.elif_, set(bound), guarded | when_false)
            self.body(node.else_, set(bound), guarded | when_false)
            return
        if isinstance(node, nodes.CondExpr):  # a if test else b: source order a, test, b
            when_true, when_false = self._guards(node.test)
            self.visit(node.expr1, bound, guarded | when_true)
            self.visit(node.test, bound, guarded)
            if node.expr2 is not None:
                self.visit(node.expr2, bound, guarded | when_false)
            return
        if isinstance(node, nodes.For):
            self.visit(node.iter, bound, guarded)
            inner = set(bound) | self._targets(node.target) | {"loop"}
            if node.test is not None:
                self.visit(node.test, inner, guarded)
            self.body(node.body, inner, guarded)
            self.body(node.else_, set(bound), guarded)
            return
        if isinstance(node, nodes.Assign):
            self.visit(node.node, bound, guarded)
            if isinstance(node.target, nodes.NSRef):
                self.visit(node.target, bound, guarded)
            bound |= self._targets(node.target)
            return
        if isinstance(node, nodes.AssignBlock):
            if node.filter is not None:
                self.visit(node.filter, bound, guarded)
            self.body(node.body, set(bound), guarded)
            bound |= self._targets(node.target)
            return
        if isinstance(node, (nodes.Macro, nodes.CallBlock)):
            for default in node.defaults:
                self.visit(default, bound, guarded)
            if isinstance(node, nodes.CallBlock):
                self.visit(node.call, bound, guarded)
            inner = set(bound) | {a.name for a in node.args} | {"caller", "varargs", "kwargs"}
            if isinstance(node, nodes.Macro):
                inner.add(node.name)
                bound.add(node.name)
            self.body(node.body, inner, guarded)
            return
        if isinstance(node, nodes.With):
            for value in node.values:
                self.visit(value, bound, guarded)
            inner = set(bound)
            for target in node.targets:
                inner |= self._targets(target)
            self.body(node.body, inner, guarded)
            return
        if isinstance(node, nodes.FilterBlock):  # {% filter f(args) %}body: source order f, body
            self.visit(node.filter, bound, guarded)
            self.body(node.body, set(bound), guarded)
            return
        if isinstance(node, nodes.Block):
            self.body(node.body, set(bound), guarded)
            return
        self.generic(node, bound, guarded)

    def generic(
        self,
        node: nodes.Node,
        bound: set[str],
        guarded: frozenset[str],
        skip: tuple[nodes.Node, ...] = (),
    ) -> None:
        for child in node.iter_child_nodes():
            if any(child is s for s in skip):
                continue
            self.visit(child, bound, guarded)


@functools.lru_cache(maxsize=1024)
def _compile(text: str) -> _Compiled:
    """Parse, check and compile ``text`` once; raises ``_Rejected``."""
    try:
        ast = _ENV.parse(text, filename=_FILENAME)
    except jinja2.TemplateSyntaxError as exc:
        raise _Rejected(TemplateSyntaxError, exc.message or str(exc), exc.lineno) from None

    scan = _Scan()
    scan.body(ast.body, set(), frozenset())
    if scan.rejections:
        raise scan.rejections[0]

    try:
        compiled = _ENV.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:  # e.g. unknown filter or test
        raise _Rejected(TemplateSyntaxError, exc.message or str(exc), exc.lineno) from None

    names = jinja2.meta.find_undeclared_variables(ast)
    never = scan._counter + 1

    def position(name: str) -> tuple[int, str]:
        return (scan.first_free.get(name) or scan.first_any.get(name) or never, name)

    ordered = tuple(sorted(names, key=position))
    # A name Jinja resolves from the inputs but that this walk saw only bound (e.g. set in an
    # if-branch, read after it) is counted as required: the safe side.
    required = frozenset(n for n in ordered if n in scan.required_uses or n not in scan.first_free)
    return _Compiled(compiled, ordered, required)


def _where(name: str | None) -> str:
    return f" in template {name!r}" if name else ""


def _compile_named(text: str, name: str | None) -> _Compiled:
    if not isinstance(text, str):
        raise ConfigError(f"template{_where(name)} must be a string, got {type(text).__name__}")
    try:
        return _compile(text)
    except _Rejected as rej:
        if rej.kind is TemplateSyntaxError:
            raise TemplateSyntaxError(rej.message + _where(name), rej.lineno) from None
        line = f" (line {rej.lineno})" if rej.lineno else ""
        raise rej.kind(f"template{_where(name)}{line}: {rej.message}") from None


def _template_lineno(exc: BaseException) -> int | None:
    lineno = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == _FILENAME:
            lineno = line
    return lineno


def _undefined_name(exc: UndefinedError) -> str | None:
    # StrictUndefined's message for a missing top-level name is "'x' is undefined".
    m = re.fullmatch(r"'([^']+)' is undefined", str(exc))
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------
# public API


def variables(text: str) -> list[str]:
    """The variables ``text`` reads from its inputs, in order of first use.

    >>> variables("{% for d in docs %}{{ d }}{% endfor %} {{ task }} {{ docs | length }}")
    ['docs', 'task']

    Raises ``TemplateSyntaxError`` (with ``.lineno``) if the text does not parse.
    """
    return list(_compile_named(text, None).variables)


class Template:
    """A compiled prompt template.

    >>> t = Template("{{ greeting | default('Hi') }}, {{ name }}")
    >>> t.variables, t.required_variables
    (['greeting', 'name'], ['name'])
    >>> t.render({"name": "Ada"})
    'Hi, Ada'
    """

    __slots__ = ("_text", "_name", "_compiled")

    def __init__(self, text: str, name: str | None = None):
        self._compiled = _compile_named(text, name)
        self._text = text
        self._name = name

    @property
    def text(self) -> str:
        """The template source."""
        return self._text

    @property
    def name(self) -> str | None:
        """The name used in error messages (e.g. an action name), if any."""
        return self._name

    @property
    def variables(self) -> list[str]:
        """Every variable, optional ones included, in order of first use."""
        return list(self._compiled.variables)

    @property
    def required_variables(self) -> list[str]:
        """Variables that must be supplied, in order of first use."""
        return [v for v in self._compiled.variables if v in self._compiled.required]

    def _missing(self, values: Mapping[str, Any], exc: UndefinedError) -> list[str] | None:
        """The absent variables to blame for ``exc``, or None if it is not about them."""
        absent = [v for v in self._compiled.variables if v not in values]
        culprit = _undefined_name(exc)
        missing = [v for v in absent if v in self._compiled.required or v == culprit]
        return missing or None

    def render(self, values: Mapping[str, Any] | None = None) -> str:
        """Render with ``values``; extra keys are ignored.

        Raises ``MissingVariablesError`` naming every missing required variable,
        ``SandboxViolationError`` for blocked access, ``TemplateError`` for any other failure.
        """
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise InvalidInputError(
                f"values for template{_where(self.name)} must be a mapping of variable name to "
                f"value, got {type(values).__name__}"
            )
        # Rendering is pure (immutable sandbox), so absent variables are checked by rendering:
        # a variable the chosen branch never reads is not needed.
        try:
            return self._compiled.template.render(dict(values))
        except SecurityError as exc:
            line = _template_lineno(exc)
            at = f" (line {line})" if line else ""
            raise SandboxViolationError(
                f"template{_where(self.name)}{at}: blocked by the sandbox: {exc}"
            ) from None
        except UndefinedError as exc:
            missing = self._missing(values, exc)
            if missing:
                raise MissingVariablesError(missing, template_name=self.name) from None
            raise self._render_error(exc) from exc
        except MemoryError:
            raise
        except Exception as exc:  # anything else a template can trigger: 1/0, "a" + 1, ...
            raise self._render_error(exc) from exc

    def _render_error(self, exc: Exception) -> TemplateError:
        line = _template_lineno(exc)
        at = f" (line {line})" if line else ""
        kind = "" if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: "
        return TemplateError(f"error rendering template{_where(self.name)}{at}: {kind}{exc}")

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"Template({label}variables={self.variables!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return (self.text, self.name) == (other.text, other.name)

    def __hash__(self) -> int:
        return hash((self.text, self.name))


def render_string(text: str, values: Mapping[str, Any] | None = None) -> str:
    """Render template ``text`` with ``values`` (compiled once and cached).

    >>> render_string("Hello {{name}}", {"name": "Ada"})
    'Hello Ada'
    """
    return Template(text).render(values)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


class ChatTemplate:
    """System message, optional extra messages (e.g. few-shot examples) and a user prompt,
    each a template; renders to OpenAI chat messages.

    >>> ct = ChatTemplate(system="You are {{persona}}.", prompt="Summarize: {{text}}")
    >>> ct.variables
    ['persona', 'text']
    >>> ct.render({"persona": "terse", "text": "..."})[0]
    {'role': 'system', 'content': 'You are terse.'}
    """

    __slots__ = ("system", "prompt", "messages", "name", "_parts")

    def __init__(
        self,
        system: str | None = None,
        prompt: str | None = None,
        messages: list[dict] | None = None,
        *,
        name: str | None = None,
    ):
        label = f" of chat template {name!r}" if name else ""
        for field, value in (("system", system), ("prompt", prompt)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{field}{label} must be a string or None, got {type(value).__name__}")
        checked: list[dict] = []
        for i, msg in enumerate(messages or []):
            if not isinstance(msg, Mapping) or set(msg) != {"role", "content"}:
                raise ConfigError(
                    f"messages[{i}]{label} must be a dict with exactly the keys 'role' and "
                    f"'content', got {msg!r}"
                )
            if msg["role"] not in _CHAT_ROLES:
                raise ConfigError(
                    f"messages[{i}]{label} has role {msg['role']!r}; expected one of {', '.join(_CHAT_ROLES)}"
                )
            if not isinstance(msg["content"], str):
                raise ConfigError(f"messages[{i}]{label} content must be template text (a string)")
            checked.append({"role": msg["role"], "content": msg["content"]})

        def part(text: str, where: str) -> Template:
            return Template(text, name=f"{name}.{where}" if name else where)

        parts: list[tuple[str, Template]] = []
        if system:  # None or "" means no system message
            parts.append(("system", part(system, "system")))
        for i, msg in enumerate(checked):
            parts.append((msg["role"], part(msg["content"], f"messages[{i}]")))
        if prompt is not None:
            parts.append(("user", part(prompt, "prompt")))

        self.system = system
        self.prompt = prompt
        self.messages = checked
        self.name = name
        self._parts = parts

    @property
    def variables(self) -> list[str]:
        """All variables of system, messages and prompt, in order of first use."""
        return _unique(v for _, t in self._parts for v in t.variables)

    @property
    def required_variables(self) -> list[str]:
        """Variables required by at least one part, in order of first use."""
        required = {v for _, t in self._parts for v in t.required_variables}
        return [v for v in self.variables if v in required]

    def render(self, values: Mapping[str, Any] | None = None) -> list[dict]:
        """Render every part into ``[{"role": ..., "content": ...}, ...]``.

        Missing variables of all parts are reported together in one ``MissingVariablesError``.
        """
        out: list[dict] = []
        missing: list[str] = []
        for role, template in self._parts:
            try:
                out.append({"role": role, "content": template.render(values)})
            except MissingVariablesError as exc:
                missing.extend(exc.missing)
        if missing:
            order = {v: i for i, v in enumerate(self.variables)}
            ordered = sorted(_unique(missing), key=lambda v: order.get(v, len(order)))
            raise MissingVariablesError(ordered, template_name=self.name)
        return out

    def to_dict(self) -> dict:
        """Plain, JSON-able form; ``ChatTemplate.from_dict`` reverses it."""
        d: dict[str, Any] = {
            "system": self.system,
            "messages": [dict(m) for m in self.messages],
            "prompt": self.prompt,
        }
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChatTemplate:
        """Build from the output of ``to_dict``."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"chat template must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {"system", "messages", "prompt", "name"}
        if unknown:
            raise ConfigError(f"unknown chat template key(s): {', '.join(sorted(map(str, unknown)))}")
        return cls(
            system=d.get("system"),
            prompt=d.get("prompt"),
            messages=d.get("messages"),
            name=d.get("name"),
        )

    @classmethod
    def from_text(cls, text: str, *, name: str | None = None) -> ChatTemplate:
        """Parse the seed's plain-text format; see ``parse_prompt_text``."""
        return parse_prompt_text(text, name=name)

    def __repr__(self) -> str:
        return (
            f"ChatTemplate(system={self.system!r}, messages={self.messages!r}, "
            f"prompt={self.prompt!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChatTemplate):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking; compare by value only


_SEPARATOR = re.compile(r"^[ \t]*={6,}[ \t]*\r?$", re.MULTILINE)
_SYSTEM_PREFIX = re.compile(r"\A\s*system message:", re.IGNORECASE)
_HEADER = re.compile(r"\A\s*prompt template\s*\Z", re.IGNORECASE)


def parse_prompt_text(text: str, *, name: str | None = None) -> ChatTemplate:
    """Parse the seed's plain-text prompt format into a ``ChatTemplate``.

    Blocks are separated by lines of six or more ``=``. A block starting ``System Message:``
    is the system message; a leading ``Prompt Template`` title block is dropped; the other
    blocks, joined by ``\\n======\\n``, are the user prompt. Text without separators is
    entirely the user prompt.

    >>> ct = parse_prompt_text("System Message: Be brief.\\n======\\n{{question}}")
    >>> ct.system, ct.prompt
    ('Be brief.', '{{question}}')
    """
    if not isinstance(text, str):
        raise ConfigError(f"prompt text must be a string, got {type(text).__name__}")
    if not _SEPARATOR.search(text):
        return ChatTemplate(prompt=text, name=name)

    blocks = [b.strip("\r\n") for b in _SEPARATOR.split(text)]
    if blocks and _HEADER.match(blocks[0]):
        blocks = blocks[1:]
    system: str | None = None
    user_blocks: list[str] = []
    for block in blocks:
        if _SYSTEM_PREFIX.match(block):
            if system is not None:
                lineno = text[: text.find(block)].count("\n") + 1
                raise TemplateSyntaxError(
                    f"more than one 'System Message:' block{_where(name)}", lineno
                )
            system = _SYSTEM_PREFIX.sub("", block, count=1).strip()
        elif block.strip():
            user_blocks.append(block)
    prompt = "\n======\n".join(user_blocks) if user_blocks else None
    return ChatTemplate(system=system, prompt=prompt, name=name)
