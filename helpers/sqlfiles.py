"""Load the SQL files under `ksql/` and fill their placeholders safely (06_stream_sql).

A placeholder is `${name}`. Values are never pasted as free text: numbers
must be finite, everything else must look like a topic name, a host:port
list or an identifier. The original built SQL by pasting tuple text; here a
bad value raises before anything reaches an engine.
"""
from __future__ import annotations

import math
import re

from .config import PROJECT_ROOT
from .errors import InputError

SQL_DIR = PROJECT_ROOT / "ksql"
_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.\-:,/]+")


def sql_literal(name: str, value: object) -> str:
    """Render one validated value for a placeholder, or raise InputError naming it."""
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
