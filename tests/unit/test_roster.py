"""A roster of full names in any script becomes ids a class server takes, stable across runs."""
from __future__ import annotations

import pytest

from helpers.classroom.roster import assign_ids, read_mapping, read_roster, safe_id, write_mapping
from helpers.core.errors import InputError
from helpers.core.settings import NAMESPACE, check_namespace


@pytest.mark.parametrize(("full_name", "expected"), [
    ("José Muñoz", "jose-munoz"),
    ("Jürgen Straße", "jurgen-strasse"),
    ("Иван Петров", "ivan-petrov"),
    ("李雷", "lilei"),
    ("Σωκράτης Παππάς", "sokratis-pappas"),
    ("Nguyễn Văn Anh", "nguyen-van-anh"),
    ("Åsa O'Neil-Smith", "asa-o-neil-smith"),
    ("  María   del  Carmen ", "maria-del-carmen"),
    ("007 Bond", "s-007-bond"),                                  # an id starts with a letter
    ("Maximiliana Concepción de la Santísima Trinidad", "maximiliana-concepcion-d"),
])
def test_a_full_name_in_any_script_becomes_a_namespace(full_name, expected):
    assert safe_id(full_name) == expected
    assert check_namespace(expected) == expected


def test_names_with_the_same_id_are_told_apart_in_roster_order_and_admin_is_never_given():
    ids = assign_ids(["Ana García", "Ana Garcia", "ANA GARCÍA", "Admin", "Aleksandra Konstantinopolska"])
    assert list(ids.values()) == ["ana-garcia", "ana-garcia-2", "ana-garcia-3", "admin-2",
                                  "aleksandra-konstantinopo"]
    assert all(NAMESPACE.fullmatch(i) for i in ids.values())
    with pytest.raises(InputError, match="names 'Ana García' twice"):
        assign_ids(["Ana García", "Ana García"])


def test_a_known_name_keeps_its_id_when_the_roster_is_reordered_or_grows(tmp_path):
    first = assign_ids(["Ana García", "Ana Garcia"])
    path = tmp_path / "roster.csv"
    write_mapping(first, path)
    assert read_mapping(path) == first
    again = assign_ids(["Ana Garcia", "Bea Ruiz", "Ana García"], read_mapping(path))
    assert again == {"Ana Garcia": "ana-garcia-2", "Bea Ruiz": "bea-ruiz", "Ana García": "ana-garcia"}
    assert assign_ids(["Ana GARCIA"], first) == {"Ana GARCIA": "ana-garcia-3"}   # a new name, new id


def test_a_roster_file_is_one_name_per_line_and_bad_files_are_one_sentence(tmp_path):
    roster = tmp_path / "roster.txt"
    roster.write_text("\ufeff# class of 2027\nJosé Muñoz\n\n  李雷  \n", encoding="utf-8")
    assert read_roster(roster) == ["José Muñoz", "李雷"]
    roster.write_bytes("José".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_roster(roster)
    roster.write_text("# nobody yet\n")
    with pytest.raises(InputError, match="names nobody"):
        read_roster(roster)
    with pytest.raises(InputError, match="There is no roster file"):
        read_roster(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="no letter or digit"):
        safe_id("¿?")
