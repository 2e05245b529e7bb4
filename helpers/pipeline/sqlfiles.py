"""Load the SQL files under `ksql/` and fill their placeholders safely (06_stream_sql, 07_stream_joins).

A placeholder is `${name}`. Values are never pasted as free text: numbers
must be finite, everything else must look like a topic name, a host:port
list or an identifier. The original built SQL by pasting tuple text; here a
bad value raises before anything reaches an engine. The one exception is a
`WithOptions` value (the Kafka login of Flink's tables, where a password may
hold any character): it becomes `'key' = 'value',` lines of a WITH clause,
each value a quoted SQL string literal, keys checked, control characters refused.
"""
from __future__ import annotations

import math
import re

from helpers.core.errors import InputError
from helpers.core.settings import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "ksql"
_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.\-:,/]+")
_OPTION_KEY = re.compile(r"[a-z][a-z0-9_.\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class WithOptions(dict):
    """Options of a SQL WITH clause, rendered as `'key' = 'value',` lines (empty: nothing)."""

    def render(self, name: str) -> str:
        """The lines, each value a quoted literal; a bad key or a control character raises InputError."""
        lines = []
        for key, value in self.items():
            if not isinstance(key, str) or not _OPTION_KEY.fullmatch(key):
                raise InputError(f"SQL parameter {name}: an option name is lower-case dotted words, "
                                 f"got {key!r}.")
            if not isinstance(value, str) or _CONTROL.search(value):
                raise InputError(f"SQL parameter {name}: the value of {key} must be text without "
                                 "line breaks or control characters.")
            lines.append(f"'{key}' = '{value.replace(chr(39), chr(39) * 2)}',")
        return "\n  ".join(lines)

    def __repr__(self) -> str:          # values may be passwords: never shown
        return f"WithOptions({sorted(self)})"


def sql_literal(name: str, value: object) -> str:
    """Render one validated value for a placeholder, or raise InputError naming it."""
    if isinstance(value, WithOptions):
        return value.render(name)
    if isinstance(value, bool):
        raise InputError(f"SQL parameter {name} must be a number or a name, got {value!r}.")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InputError(f"SQL parameter {name} must be finite, got {value!r}.")
        return repr(value) if isinstance(value, int) else repr(float(value))
    if isinstance(value, str) and _SAFE_TEXT.fullmatch(value):
        return value
    raise InputError(
        f"SQL parameter {name} may hold only letters, digits and _ . - : , /, got {value!r}."
    )


def render_sql(text: str, **values: object) -> str:
    """Replace every ${name} in `text`; a missing or unused value is an error."""
    wanted = set(_PLACEHOLDER.findall(text))
    missing, unused = wanted - values.keys(), values.keys() - wanted
    if missing:
        raise InputError(f"SQL parameters missing: {', '.join(sorted(missing))}.")
    if unused:
        raise InputError(f"SQL parameters not used by this statement: {', '.join(sorted(unused))}.")
    return _PLACEHOLDER.sub(lambda m: sql_literal(m.group(1), values[m.group(1)]), text)


def split_statements(text: str) -> list[str]:
    """Split a file into statements on `;` at line ends, dropping `--` comment lines."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() + ";" for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def load_sql(relative: str, **values: object) -> list[str]:
    """Read ksql/<relative>, fill its placeholders and return its statements."""
    path = SQL_DIR / relative
    if not path.is_file():
        raise InputError(f"No SQL file {path}.")
    return split_statements(render_sql(path.read_text(), **values))
