"""Campaign templates in a Jinja2 sandbox that cannot be made to hang or to eat memory.

    >>> env = BoundedEnvironment()
    >>> render(compile_template(env, "Hello {{ first_name|title }}"), {"first_name": "asha"})
    'Hello Asha'

Jinja2's sandbox stops a template from reaching Python objects or files (SPEC 7); it does not stop
`{{ 'x' * 10**9 }}`, `{{ 9 ** (9 ** 10) }}`, `'%0999999999d'|format(1)`, loops nested a million
deep or a recursive macro. A greeting is a sentence and an instruction a paragraph, so every
bound below is far above what one needs and far below what hurts a million-row run:

* every text a template builds is at most `max_template_text_chars`, every list or range
  `max_template_items`, every integer `max_template_int_bits`; the operators, filters and
  methods that can grow a value are checked before they allocate, everything else is checked
  on its result;
* a render takes at most `max_template_steps` steps (a loop iteration, a call, a filter, an
  operator): deterministic, so a dry run and the run agree on which rows are ready;
* and at most `template_cpu_seconds` of CPU time, checked every `_CLOCK_EVERY` steps: the backstop
  for a step that is slow rather than big. CPU time of this thread, not wall time, so a loaded
  machine does not turn a good row invalid; cooperative, so it works the same in the pool's
  worker processes and in any thread (no signals).

The bounds are those of the `Settings` the environment is made with (`DEFAULTS` unless a
caller passes others); compiling and rendering check against them. A bound broken is
`TemplateBoundError`; `contacts` makes it a campaign error at load (when a
trial render with placeholder values breaks it) or an `invalid` row with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from dialer.core.settings import DEFAULTS, Settings

_CLOCK_EVERY = 64  # steps between two looks at the clock (a clock read costs ~0.3 us)

_LOOP_FILTER = "_dialer_loop"
_CONCAT_FILTER = "_dialer_concat"


class TemplateBoundError(Exception):
    """A template asked for more than a greeting could need (see the module docstring)."""


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = math.inf  # set at the first clock check: no clock read for small renders


class _State(threading.local):
    budget: _Budget | None = None
    limits: Settings = DEFAULTS  # the bounds of the environment compiling or rendering now


_state = _State()


def _tick() -> None:
    """One step of the current render; outside a render (compile-time folding) a no-op."""
    budget = _state.budget
    if budget is None:
        return
    budget.steps += 1
    if budget.steps % _CLOCK_EVERY:
        return
    limits = _state.limits
    if budget.steps > limits.max_template_steps:
        raise TemplateBoundError(
            f"more than {limits.max_template_steps:,} steps (loops, calls, filters)"
        )
    now = time.thread_time()
    if budget.deadline == math.inf:
        budget.deadline = now + limits.template_cpu_seconds
    elif now > budget.deadline:
        raise TemplateBoundError(f"took more than {limits.template_cpu_seconds:g} s to render")


def render(template: Any, context: dict[str, str]) -> str:
    """`template.render(context)` within the bounds of its environment's settings; raises
    `TemplateBoundError`. (Once per row: a plain save and restore, no context manager.)"""
    saved = _state.budget, _state.limits
    _state.budget, _state.limits = _Budget(), template.environment.limits
    try:
        return template.render(context)
    finally:
        _state.budget, _state.limits = saved


def _too_long(chars: int) -> TemplateBoundError:
    most = _state.limits.max_template_text_chars
    return TemplateBoundError(f"builds a text of {chars:,} characters (at most {most:,})")


def _need_text(chars: int) -> None:
    if chars > _state.limits.max_template_text_chars:
        raise _too_long(chars)


def _need_items(count: int) -> None:
    most = _state.limits.max_template_items
    if count > most:
        raise TemplateBoundError(f"builds a list of {count:,} items (at most {most:,})")


def _need_bits(bits: float) -> None:
    if bits > _state.limits.max_template_int_bits:
        raise TemplateBoundError(f"builds a number of about {bits / 3.32:,.0f} digits")


def _checked(value: Any) -> Any:
    """The value, if it is within the bounds (for results nothing could check beforehand)."""
    if isinstance(value, str):
        _need_text(len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset | range):
        _need_items(len(value))
    elif isinstance(value, int) and value.bit_length() > _state.limits.max_template_int_bits:
        _need_bits(value.bit_length())
    return value


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) else 0


_CONTAINERS = (list, tuple, set, frozenset, dict)


def _sized(value: Any, limit: int | None = None) -> int:
    """Characters `value` takes as text, counted without building it (`[s] * 1000` is a list of
    1,000 items but a text of 1,000 x len(s)); counting stops just past `limit` (default: the
    longest text allowed)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return len(str(value))
    if limit is None:
        limit = _state.limits.max_template_text_chars
    total = 2
    for item in value.items() if isinstance(value, dict) else value:
        total += _sized(item, limit - total) + 2
        if total > limit:
            break
    return total


def _need_sized(value: Any) -> None:
    most = _state.limits.max_template_text_chars
    if _sized(value) > most:
        raise TemplateBoundError(f"builds a text of more than {most:,} characters")


def _as_text(value: Any) -> str:
    """`str(value)`, once its size is known to be within the bounds."""
    if isinstance(value, str):
        return value
    _need_sized(value)
    return str(value)


def _stringified(value: Any, *_args: Any, **_kwargs: Any) -> None:
    """Precheck for the filters that begin with `str(value)`."""
    if isinstance(value, _CONTAINERS):
        _need_sized(value)


# Filters that turn their value into text first: a heavy list must be refused before that.
_STRINGIFYING = (  # noqa: SIM905 (a word list)
    "capitalize e escape forceescape lower pprint safe string striptags title tojson trim "
    "truncate upper urlencode urlize wordcount xmlattr"
).split()


def _repeat_size(left: Any, right: Any) -> None:
    """Check `left * right` before it runs: sequence repetition and big integers."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            if isinstance(seq, str):
                _need_text(len(seq) * max(times, 0))
            else:
                _need_items(len(seq) * max(times, 0))
            return
    if isinstance(left, int) and isinstance(right, int):
        _need_bits(left.bit_length() + right.bit_length())


def _power_size(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _need_bits(exponent * math.log2(abs(base)))


def _add_size(left: Any, right: Any) -> None:
    if isinstance(left, str) and isinstance(right, str):
        _need_text(len(left) + len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        _need_items(len(left) + len(right))


# printf-style: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_SPEC_NUMBER = re.compile(r"\d+")


def _format_cost(
    template_chars: int, fields: int, numbers: Iterable[str], args: Iterable[Any]
) -> None:
    """Check a format's output size before formatting: widths, and fields x longest argument."""
    widths = 0
    for number in numbers:
        if number == "*":
            raise TemplateBoundError("'*' widths are not allowed in a format")
        _need_text(int(number) if len(number) < 8 else _state.limits.max_template_text_chars + 1)
        widths += int(number)
    longest = max((_sized(a) for a in args), default=0)
    _need_text(template_chars + widths + fields * longest)


def _printf_cost(fmt: str, values: Any) -> None:
    specs = [m for m in _PRINTF.finditer(fmt) if m.group(3) != "%"]
    if isinstance(values, dict):
        args: Iterable[Any] = values.values()
    elif isinstance(values, tuple):
        args = values
    else:
        args = (values,)
    numbers = [n for m in specs for n in (m.group(1), m.group(2)) if n]
    _format_cost(len(fmt), len(specs), numbers, args)


def _str_format_cost(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    fields = 0
    numbers: list[str] = []
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself, with nothing built
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise TemplateBoundError("nested '{...}' in a format specification is not allowed")
        numbers.extend(_SPEC_NUMBER.findall(spec or ""))
    _format_cost(len(fmt), fields, numbers, (*args, *kwargs.values()))


def _width_first(owner: Any, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
    _need_text(len(owner) + _int_arg(args[0] if args else _kwargs.get("width", 0)))


def _replace_cost(s: str, old: Any, new: Any) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = s.count(old) if old else len(s) + 1
        _need_text(len(s) + hits * max(len(new) - len(old), 0))


def _join_cost(sep: str, items: list[Any]) -> None:
    _need_items(len(items))
    _need_text(sum(_sized(i) for i in items) + max(len(items) - 1, 0) * len(sep))


def _method_replace(owner: Any, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
    if len(args) >= 2:
        _replace_cost(owner, args[0], args[1])


def _method_expandtabs(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    tabsize = _int_arg(args[0] if args else kwargs.get("tabsize", 8))
    _need_text(len(owner) + owner.count("\t") * max(tabsize, 0))


# Methods of str, dict, set and numbers a template may call; None = nothing to check first.
# Others (translate, to_bytes, encode, ...) are refused: none is needed in a greeting.
_SAFE_METHODS = (  # noqa: SIM905 (a word list reads better than 52 quoted names)
    "capitalize casefold count endswith find index isalnum isalpha isascii isdecimal isdigit "
    "isidentifier islower isnumeric isprintable isspace istitle isupper lower lstrip partition "
    "removeprefix removesuffix rfind rindex rpartition rsplit rstrip split splitlines startswith "
    "strip swapcase title upper "  # str
    "get items keys values copy "  # dict: the immutable sandbox refuses the mutators
    "union intersection difference symmetric_difference isdisjoint issubset issuperset "  # set
    "bit_length bit_count conjugate is_integer as_integer_ratio"  # numbers
).split()
_CHECKED_METHODS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], None] | None] = {
    name: None for name in _SAFE_METHODS
}
_CHECKED_METHODS |= {
    "center": _width_first,
    "ljust": _width_first,
    "rjust": _width_first,
    "zfill": _width_first,
    "replace": _method_replace,
    "expandtabs": _method_expandtabs,
    "join": None,  # handled in `call`: the items are needed first
}
_BUILTIN_VALUES = (str, bytes, int, float, complex, list, tuple, dict, set, frozenset, range)


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts as a step and whose result is checked."""

    @functools.wraps(func)  # keeps `jinja_pass_arg` (pass_context & co.)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return _checked(func(*args, **kwargs))

    return guarded


def _prechecked(func: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """`_guarded(func)`, and `check(value, *args, **kwargs)` before it runs."""
    # A filter marked pass_context/pass_eval_context/pass_environment gets that first.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(TypeError):  # wrong arguments: the filter itself says so
            check(*args[skip:], **kwargs)
        return func(*args, **kwargs)

    return _guarded(bounded)


def _filter_center(value: Any, width: Any = 80) -> None:
    _need_text(_sized(value) + _int_arg(width))


def _filter_indent(s: Any, width: Any = 4, first: Any = False, blank: Any = False) -> None:
    text = _as_text(s)
    per_line = len(width) if isinstance(width, str) else _int_arg(width)
    _need_text(len(text) + (text.count("\n") + 1) * max(per_line, 0))


def _filter_wordwrap(
    s: Any, width: Any = 79, break_long: Any = True, wrapstring: Any = None, hyphens: Any = True
) -> None:
    text = _as_text(s)
    breaks = len(text) // max(_int_arg(width), 1) + len(text.split()) + 1
    _need_text(len(text) + breaks * len(str(wrapstring or "\n")))


def _filter_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    _replace_cost(_as_text(s), _as_text(old), _as_text(new))


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> None:
    _printf_cost(_as_text(value), kwargs or args)


def _filter_batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    _need_items(_int_arg(linecount))


def _filter_slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    _need_items(_int_arg(slices))


def _filter_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float):
        raise TemplateBoundError("sum() adds numbers only")


def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
    _tick()
    if attribute is None:
        value = list(value)
        _join_cost(str(d), value)
    return _checked(FILTERS["join"](eval_ctx, value, d, attribute))


functools.update_wrapper(_bounded_join, FILTERS["join"])


def _loop(iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates: each item is a step."""
    for item in iterable:
        _tick()
        yield item


def _concat(pieces: list[Any]) -> str:
    """The `~` operator: `a ~ b ~ c` arrives here as [a, b, c]."""
    texts = [_as_text(p) for p in pieces]
    _need_text(sum(map(len, texts)))
    return "".join(texts)


def _bounded_output(pieces: Iterable[str]) -> str:
    """`Environment.concat`: joins a render's output, a macro's, a `{% set %}` block's."""
    if isinstance(pieces, list):
        _need_text(sum(map(len, pieces)))
        return "".join(pieces)
    out, total, most = [], 0, _state.limits.max_template_text_chars
    for piece in pieces:  # the whole render: stop as soon as it is too long
        total += len(piece)
        if total > most:
            raise _too_long(total)
        out.append(piece)
    return "".join(out)


def _range(*args: int) -> range:
    result = range(*args)
    _need_items(len(result))
    return result


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    _need_text(_int_arg(n) * _int_arg(max) * 15)  # ~15 characters a word at most
    return _checked(generate_lorem_ipsum(n, html, min, max))


class _Guard(NodeTransformer):
    """Routes every loop and every `~` through the bounded helpers above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every way to grow a value or to spin bounded by the
    `max_template_*` and `template_cpu_seconds` of `limits`."""

    # `-`, `/` and `//` cannot grow a value beyond its operands: left to run at full speed.
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(_bounded_output)

    def __init__(self, limits: Settings = DEFAULTS) -> None:
        self.limits = limits
        # finalize: every `{{ value }}` is made text through `_as_text`, so a heavy list is
        # refused before `str()` builds it.
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            finalize=_as_text,
        )
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum
        filters = {name: _guarded(func) for name, func in self.filters.items()}
        for name in _STRINGIFYING:
            filters[name] = _prechecked(FILTERS[name], _stringified)
        filters["center"] = _prechecked(FILTERS["center"], _filter_center)
        filters["indent"] = _prechecked(FILTERS["indent"], _filter_indent)
        filters["wordwrap"] = _prechecked(FILTERS["wordwrap"], _filter_wordwrap)
        filters["replace"] = _prechecked(FILTERS["replace"], _filter_replace)
        filters["format"] = _prechecked(FILTERS["format"], _filter_format)
        filters["batch"] = _prechecked(FILTERS["batch"], _filter_batch)
        filters["slice"] = _prechecked(FILTERS["slice"], _filter_slice)
        filters["sum"] = _prechecked(FILTERS["sum"], _filter_sum)
        filters["join"] = _bounded_join
        filters[_LOOP_FILTER] = _loop
        filters[_CONCAT_FILTER] = _concat
        self.filters = filters

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _tick()
        if operator_ == "*":
            _repeat_size(left, right)
        elif operator_ == "**":
            _power_size(left, right)
        elif operator_ == "+":
            _add_size(left, right)
        elif operator_ == "%" and isinstance(left, str):
            _printf_cost(left, right)
        return _checked(super().call_binop(context, operator_, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        _tick()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, _BUILTIN_VALUES) and not isinstance(obj, type):
            name = getattr(obj, "__name__", "")
            if name not in _CHECKED_METHODS:
                raise TemplateBoundError(f"the method {name}() is not available in templates")
            if name == "join" and isinstance(owner, str) and args and not kwargs:
                items = list(args[0])
                _join_cost(owner, items)
                args = (items, *args[1:])
            check = _CHECKED_METHODS[name]
            if check is not None:
                check(owner, args, kwargs)
        return _checked(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map and len(args) == 1 and isinstance(args[0], dict):
                _str_format_cost(fmt, (), args[0])
            else:
                _str_format_cost(fmt, args, kwargs)
            return _checked(wrapped(*args, **kwargs))

        return bounded


def compile_template(env: BoundedEnvironment, source: str) -> Any:
    """Parse, route loops and `~` through the bounds, compile (documented: `from_string`
    takes a parsed template too). Constants folded while compiling are checked against the
    environment's bounds too."""
    saved = _state.budget, _state.limits
    _state.budget, _state.limits = None, env.limits  # no steps counted while compiling
    try:
        tree = _Guard().visit(env.parse(source))
        tree.set_environment(env)
        return env.from_string(tree)
    finally:
        _state.budget, _state.limits = saved


def template_variables(*sources: str) -> frozenset[str] | None:
    """The names the templates read from a row (the sandbox's globals left out); None when a
    template does not parse: its error is the campaign's, reported when it is compiled."""
    from jinja2 import TemplateSyntaxError, meta

    env = BoundedEnvironment()
    names: set[str] = set()
    try:
        for source in sources:
            names |= meta.find_undeclared_variables(env.parse(source))
    except (TemplateSyntaxError, RecursionError, SyntaxError, MemoryError):
        return None
    return frozenset(names - set(env.globals))
