"""A class roster of real names, in any script, turned into the short ids a class server needs.

A namespace is a lower-case name of letters, digits, _ and - that starts with a
letter and has at most 24 characters: it prefixes every topic, group and
database of a student. A roster holds full names ("José Muñoz", "Иван
Петров", "李雷"): each is written in Latin letters (anyascii), lowered, its
words joined by "-", and cut to fit; two students whose ids would be the same
get "-2", "-3"... in roster order. The mapping is shown to the instructor and
kept beside the students' files (roster.csv), so that "jose-munoz" can be found
again, and a name keeps its id when the roster is reordered or grows.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from anyascii import anyascii

from helpers.core.errors import InputError

MAX_ID = 24
RESERVED = ("admin",)           # the class server's super user


def safe_id(full_name: str) -> str:
    """A namespace for one person: 'José Muñoz' -> 'jose-munoz', 'Иван Петров' -> 'ivan-petrov'."""
    words = re.findall(r"[a-z0-9]+", anyascii(full_name).lower())
    if not words:
        raise InputError(f"The roster name {full_name!r} has no letter or digit to make an id from.")
    name = "-".join(words)
    if not name[0].isalpha():
        name = "s-" + name
    return name[:MAX_ID].rstrip("-")


def assign_ids(names: list[str], known: dict[str, str] | None = None) -> dict[str, str]:
    """Each full name's id, in roster order, the same ids made distinct with -2, -3... A name
    `known` from an earlier roster keeps its id, whatever the order now."""
    known = known or {}
    ids: dict[str, str] = {}
    taken = set(RESERVED) | set(known.values())
    for full_name in names:
        if full_name in ids:
            raise InputError(f"The roster names {full_name!r} twice: tell the two apart, "
                             "e.g. with an initial.")
        if full_name in known:
            ids[full_name] = known[full_name]
            continue
        base, n = safe_id(full_name), 1
        candidate = base
        while candidate in taken:
            n += 1
            candidate = f"{base[:MAX_ID - len(str(n)) - 1].rstrip('-')}-{n}"
        taken.add(candidate)
        ids[full_name] = candidate
    return ids


def read_roster(path: Path) -> list[str]:
    """The full names of a roster file: one per line, UTF-8; blank lines and # comments skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"There is no roster file {path}.") from None
    except UnicodeDecodeError:
        raise InputError(f"The roster {path} is not UTF-8 text: save it as UTF-8, one name per line.") \
            from None
    names = [" ".join(line.split()) for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise InputError(f"The roster {path} names nobody: write one full name per line.")
    return names


def read_mapping(path: Path) -> dict[str, str]:
    """The mapping an earlier `write_mapping` kept ({} when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as kept:
        return {row["full name"]: row["id"] for row in csv.DictReader(kept)}


def write_mapping(ids: dict[str, str], path: Path) -> None:
    """The instructor's copy of the mapping, and the ids' memory: a CSV of full name and id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["full name", "id"])
        writer.writerows(ids.items())
