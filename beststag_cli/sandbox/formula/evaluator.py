"""Compilation of a parsed formula into a tree of Python closures.

Each node compiles to ``(fn, const)`` where ``fn(ctx) -> value``; when every input of a pure node is
constant the node is folded at compile time (e.g. ``DATETIME_PARSE('2024-01-31')``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import lark

from .functions import FUNCTIONS, FunctionSpec, NeedsContext, switch_match
from .parser import FormulaError, parse, unescape_field, unescape_string
from .values import (
    DIV0,
    ERROR,
    MAX_TEXT,
    CoercionError,
    FormulaValueError,
    compare,
    is_truthy,
    to_number,
    to_text,
)

Fn = Callable[[Any], Any]
_FVE = FormulaValueError
_CONSTANT_NAMES = {"TRUE": True, "FALSE": False}


class CompiledFormula:
    """A compiled formula. ``evaluate`` never raises for data problems; it returns an error value."""

    __slots__ = ("_fn", "field_keys", "text")

    def __init__(self, text: str, fn: Fn, field_keys: frozenset[Hashable]) -> None:
        self.text = text
        self._fn = fn
        self.field_keys = field_keys

    def evaluate(self, ctx: Any) -> Any:
        try:
            return self._fn(ctx)
        except Exception:  # defensive: any leak becomes the error value
            return ERROR

    def matches(self, ctx: Any) -> bool:
        try:
            value = self._fn(ctx)
        except Exception:
            return False
        return is_truthy(value)

    def __repr__(self) -> str:
        return f"CompiledFormula({self.text!r})"


# ---------------------------------------------------------------- operators


def _num(value: Any) -> Any:
    t = type(value)
    if t is int or t is float:
        return value
    return to_number(value)


def _arith(op: str, a: Any, b: Any) -> Any:
    if type(a) is _FVE:
        return a
    if type(b) is _FVE:
        return b
    try:
        x, y = _num(a), _num(b)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0:
            return DIV0
        return x / y
    except CoercionError:
        # text that is not a number: NaN, as Airtable answers (pyairtable's real test base records
        # {"specialValue": "NaN"} for `{field} + "FOO"`); dates and arrays stay #ERROR!
        return NAN if type(a) is str or type(b) is str else ERROR
    except (ArithmeticError, TypeError, ValueError):
        return ERROR


NAN = float("nan")


def _concat(a: Any, b: Any) -> Any:
    if type(a) is _FVE:
        return a
    if type(b) is _FVE:
        return b
    try:
        s = (a if type(a) is str else to_text(a)) + (b if type(b) is str else to_text(b))
    except CoercionError:
        return ERROR
    if len(s) > MAX_TEXT:
        return ERROR
    return s


def _negate(a: Any) -> Any:
    if type(a) is _FVE:
        return a
    try:
        return -_num(a)
    except (CoercionError, TypeError):
        return ERROR


def _safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            return ERROR

    return wrapper


# ---------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, resolve_field: Callable[[str], Hashable]) -> None:
        self.resolve_field = resolve_field
        self.keys: dict[str, Hashable] = {}
        self.field_keys: set[Hashable] = set()
        # closures whose value depends only on ctx.now (NOW(), DATEADD(NOW(), -7, 'days'), ...)
        self.now_only: set[int] = set()

    # -- pre-pass: unknown fields and functions, all at once
    def check_names(self, tree: lark.Tree) -> None:
        unknown_fields: list[str] = []
        unknown_functions: list[str] = []
        for tok in _tokens_in_order(tree):
            if tok.type in ("FIELD", "NAME"):
                name = unescape_field(tok) if tok.type == "FIELD" else str(tok)
                if name in self.keys:
                    continue
                try:
                    self.keys[name] = self.resolve_field(name)
                except KeyError:
                    if tok.type == "NAME" and name.upper() in _CONSTANT_NAMES:
                        continue
                    if name not in unknown_fields:
                        unknown_fields.append(name)
            elif tok.type == "FUNCNAME":
                fname = tok.upper()
                if fname not in FUNCTIONS and str(tok) not in unknown_functions:
                    unknown_functions.append(str(tok))
        if unknown_fields:
            raise FormulaError(f"Unknown field names: {', '.join(unknown_fields)}")
        if unknown_functions:
            raise FormulaError(f"Unknown function names: {', '.join(unknown_functions)}")

    def compile(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        """Return (fn, is_const, const_value)."""
        kind = node.data
        method = getattr(self, f"_c_{kind}", None)
        if method is None:  # pragma: no cover - grammar and compiler are kept in sync
            raise FormulaError(f"Unsupported syntax: {kind}")
        return method(node)

    @staticmethod
    def _const(value: Any) -> tuple[Fn, bool, Any]:
        return (lambda ctx: value), True, value

    # literals
    def _c_number(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        text = str(node.children[0])
        if text.isdigit() and len(text) <= 15:
            return self._const(int(text))
        value = float(text)
        if value.is_integer() and abs(value) < 2**53 and "e" not in text.lower():
            return self._const(int(value))
        return self._const(value)

    def _c_string(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        return self._const(unescape_string(str(node.children[0])))

    def _field(self, name: str) -> tuple[Fn, bool, Any]:
        key = self.keys[name]
        self.field_keys.add(key)

        def fn(ctx: Any) -> Any:
            return ctx.value(key)

        return fn, False, None

    def _c_field(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        return self._field(unescape_field(str(node.children[0])))

    def _c_bare_field(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        name = str(node.children[0])
        if name not in self.keys:
            return self._const(_CONSTANT_NAMES[name.upper()])
        return self._field(name)

    # operators
    def _c_neg(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        a, const, value = self.compile(node.children[0])
        if const:
            return self._const(_negate(value))
        return (lambda ctx: _negate(a(ctx))), False, None

    def _c_pos(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        return self.compile(node.children[0])

    def _c_arith(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        left, op_tok, right = node.children
        op = str(op_tok)
        a, ac, av = self.compile(left)
        b, bc, bv = self.compile(right)
        if ac and bc:
            return self._const(_arith(op, av, bv))
        return (lambda ctx: _arith(op, a(ctx), b(ctx))), False, None

    def _c_concat(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        a, ac, av = self.compile(node.children[0])
        b, bc, bv = self.compile(node.children[1])
        if ac and bc:
            return self._const(_concat(av, bv))
        return (lambda ctx: _concat(a(ctx), b(ctx))), False, None

    def _c_compare(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        left, op_tok, right = node.children
        op = str(op_tok)
        a, ac, av = self.compile(left)
        b, bc, bv = self.compile(right)
        safe_compare = _safe(compare)
        if ac and bc:
            return self._const(safe_compare(op, av, bv))
        if bc and type(bv) is str and op in ("=", "!="):
            # fast path for the ubiquitous {field} = 'text'
            want = op == "="

            def fn_text(ctx: Any) -> Any:
                x = a(ctx)
                if type(x) is str:
                    return (x == bv) is want
                return safe_compare(op, x, bv)

            return fn_text, False, None
        return (lambda ctx: safe_compare(op, a(ctx), b(ctx))), False, None

    # function calls
    def _c_call(self, node: lark.Tree) -> tuple[Fn, bool, Any]:
        name_tok = node.children[0]
        name = str(name_tok).upper()
        arg_nodes: list[lark.Tree] = []
        if len(node.children) > 1 and node.children[1] is not None:
            arg_nodes = list(node.children[1].children)
        spec = FUNCTIONS[name]
        n = len(arg_nodes)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise FormulaError(f"Wrong number of arguments to {name}(): expected {_arity(spec)}, got {n}")
        if spec.kind == "lazy":
            return getattr(self, f"_lazy_{name.lower()}")(arg_nodes)
        compiled = [self.compile(arg) for arg in arg_nodes]
        fns = [c[0] for c in compiled]
        if all(c[1] for c in compiled):
            values = [c[2] for c in compiled]
            try:
                return self._const(_call_values(spec, None, values))
            except NeedsContext:
                pass
        fn = _make_call(spec, fns)
        if name in _NOW_FUNCTIONS:
            self.now_only.add(id(fn))
        elif spec.kind in ("strict", "lenient") and all(c[1] or id(c[0]) in self.now_only for c in compiled):
            fn = _memo_by_now(fn)
            self.now_only.add(id(fn))
        return fn, False, None

    def _lazy_if(self, args: list[lark.Tree]) -> tuple[Fn, bool, Any]:
        cond, cc, cv = self.compile(args[0])
        then, tc, tv = self.compile(args[1])
        other, oc, ov = self.compile(args[2]) if len(args) > 2 else self._const(None)
        if cc:
            if type(cv) is _FVE:
                return self._const(cv)
            return (then, tc, tv) if is_truthy(cv) else (other, oc, ov)

        def fn(ctx: Any) -> Any:
            c = cond(ctx)
            if type(c) is _FVE:
                return c
            return then(ctx) if is_truthy(c) else other(ctx)

        return fn, False, None

    def _lazy_switch(self, args: list[lark.Tree]) -> tuple[Fn, bool, Any]:
        expr = self.compile(args[0])[0]
        rest = [self.compile(a)[0] for a in args[1:]]
        pairs = [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
        default: Fn = rest[-1] if len(rest) % 2 == 1 else (lambda ctx: None)

        def fn(ctx: Any) -> Any:
            value = expr(ctx)
            if type(value) is _FVE:
                return value
            for pattern, result in pairs:
                p = pattern(ctx)
                if type(p) is _FVE:
                    return p
                try:
                    if switch_match(value, p):
                        return result(ctx)
                except Exception:
                    return ERROR
            return default(ctx)

        return fn, False, None

    def _lazy_last_modified_time(self, args: list[lark.Tree]) -> tuple[Fn, bool, Any]:
        keys: list[Hashable] = []
        for arg in args:
            if arg.data not in ("field", "bare_field"):
                raise FormulaError("LAST_MODIFIED_TIME() only accepts field references as arguments")
            raw = str(arg.children[0])
            name = unescape_field(raw) if arg.data == "field" else raw
            if name not in self.keys:
                raise FormulaError(f"Unknown field names: {name}")
            key = self.keys[name]
            self.field_keys.add(key)
            keys.append(key)
        selected: list[Hashable] | None = keys or None

        def fn(ctx: Any) -> Any:
            try:
                return ctx.last_modified(list(selected) if selected is not None else None)
            except Exception:
                return ERROR

        return fn, False, None


_NOW_FUNCTIONS = frozenset({"NOW", "TODAY"})
_UNSET = object()


def _memo_by_now(inner: Fn) -> Fn:
    """Cache a closure that only depends on ``ctx.now`` (one scan shares one ``now``)."""
    cache: list[tuple[Any, Any]] = [(_UNSET, None)]

    def memo(ctx: Any) -> Any:
        now = ctx.now
        entry = cache[0]  # read once: the (now, value) pair is replaced atomically
        if entry[0] is now or entry[0] == now:
            return entry[1]
        value = inner(ctx)
        cache[0] = (now, value)
        return value

    return memo


def _tokens_in_order(tree: lark.Tree) -> list[lark.Token]:
    out: list[lark.Token] = []
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, lark.Tree):
            stack.extend(reversed(item.children))
        elif isinstance(item, lark.Token):
            out.append(item)
    return out


def _arity(spec: FunctionSpec) -> str:
    if spec.max_args is None:
        return f"at least {spec.min_args}"
    if spec.min_args == spec.max_args:
        return str(spec.min_args)
    return f"{spec.min_args} to {spec.max_args}"


def _call_values(spec: FunctionSpec, ctx: Any, values: list[Any]) -> Any:
    """Call a non-lazy function on evaluated values (used for constant folding)."""
    if spec.kind != "lenient":
        for v in values:
            if type(v) is _FVE:
                return v
    impl = spec.impl
    assert impl is not None
    try:
        if spec.kind == "ctx":
            return impl(ctx, *values)
        return impl(*values)
    except NeedsContext:
        raise
    except Exception:
        return ERROR


def _make_call(spec: FunctionSpec, fns: list[Fn]) -> Fn:
    impl = spec.impl
    assert impl is not None
    n = len(fns)
    if spec.kind == "lenient":

        def lenient(ctx: Any) -> Any:
            try:
                return impl(*[f(ctx) for f in fns])
            except Exception:
                return ERROR

        return lenient
    if spec.kind == "ctx":

        def with_ctx(ctx: Any) -> Any:
            values = [f(ctx) for f in fns]
            for v in values:
                if type(v) is _FVE:
                    return v
            try:
                return impl(ctx, *values)
            except Exception:
                return ERROR

        return with_ctx
    if n == 0:

        def call0(ctx: Any) -> Any:
            try:
                return impl()
            except Exception:
                return ERROR

        return call0
    if n == 1:
        f0 = fns[0]

        def call1(ctx: Any) -> Any:
            x = f0(ctx)
            if type(x) is _FVE:
                return x
            try:
                return impl(x)
            except Exception:
                return ERROR

        return call1
    if n == 2:
        f0, f1 = fns

        def call2(ctx: Any) -> Any:
            x = f0(ctx)
            if type(x) is _FVE:
                return x
            y = f1(ctx)
            if type(y) is _FVE:
                return y
            try:
                return impl(x, y)
            except Exception:
                return ERROR

        return call2

    def calln(ctx: Any) -> Any:
        values = [f(ctx) for f in fns]
        for v in values:
            if type(v) is _FVE:
                return v
        try:
            return impl(*values)
        except Exception:
            return ERROR

    return calln


def compile_formula(text: str, resolve_field: Callable[[str], Hashable]) -> CompiledFormula:
    """Parse and compile ``text``. ``resolve_field(name)`` returns an opaque key or raises KeyError."""
    tree = parse(text)
    compiler = _Compiler(resolve_field)
    try:
        compiler.check_names(tree)
        fn = compiler.compile(tree)[0]
    except RecursionError:
        raise FormulaError("The formula is too deeply nested") from None
    return CompiledFormula(text, fn, frozenset(compiler.field_keys))
