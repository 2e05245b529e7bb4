"""The package as a user installs it: a wheel that holds every layer and declares what it needs, and
a bare `pytest` that starts no service."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import helpers

PROJECT = Path(helpers.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds from this checkout (no dependencies fetched)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(PROJECT)], check=True, capture_output=True, text=True, timeout=300)
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_holds_every_module_of_every_layer(wheel):
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("helpers/")}
    in_tree = {str(p.relative_to(PROJECT)) for p in (PROJECT / "helpers").rglob("*.py")}
    assert in_tree - in_wheel == set()
    assert {"helpers/infra/stack.py", "helpers/classroom/exercises/ex04_routing.py"} <= in_wheel


def test_the_wheel_declares_what_the_code_imports(wheel):
    archive = zipfile.ZipFile(wheel)
    [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist") or []
    names = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower() for r in requires}
    assert {"confluent-kafka", "pandas", "sqlalchemy", "pymysql", "python-dotenv", "orjson", "psutil",
            "matplotlib", "ipywidgets", "apache-flink"} <= names


def test_an_installed_wheel_runs_from_anywhere_given_the_workbook_folder(wheel, tmp_path):
    """Installed outside the checkout, the command finds the workbook through WORKBOOK_HOME: `workbook
    status --json` answers (every service down here) instead of failing on a missing module."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "WORKBOOK_HOME": str(PROJECT), "WORKBOOK_STACK": "local",
           "KAFKA_PORT": "1", "MYSQL_PORT": "2", "MYSQL_PASSWORD": "x"}
    code = "import helpers, sys; from helpers.cli import main; print(helpers.__file__); sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "status", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    where, _, report = result.stdout.partition("\n")
    assert where.startswith(str(target)), result.stdout + result.stderr
    services = {s["name"] for s in json.loads(report)["services"]}
    assert result.returncode == 1 and services >= {"kafka", "mysql"}


def test_bare_pytest_collects_only_tests_that_need_no_service():
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    folders = {line.split("/")[1] for line in collected}
    assert result.returncode == 0 and folders == {"unit", "contract"}, result.stdout[-2000:]
