"""Static checks of the dev container (.devcontainer/): no container engine needed.

devcontainer.json is JSONC (JSON with comments). It is validated against the
official dev container schema, vendored with its provenance in
tests/fixtures/devcontainer/ (no network at test time), then against the
workbook's own rules: exact image and feature versions, Python 3.11 and Java
17, the setup run once, JupyterLab started and its port forwarded.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
POST_CREATE = ROOT / ".devcontainer" / "post-create.sh"
SCHEMA = ROOT / "tests" / "fixtures" / "devcontainer" / "devContainer.base.schema.json"
MAKEFILE = ROOT / "Makefile"

EXACT_IMAGE = re.compile(r"^mcr\.microsoft\.com/devcontainers/python:\d+\.\d+\.\d+-3\.11-bookworm$")
EXACT_FEATURE = re.compile(r"^ghcr\.io/devcontainers/features/[a-z-]+:\d+\.\d+\.\d+$")
JUPYTER_DEFAULT_PORT = 8888


def strip_jsonc(text: str) -> str:
    """JSON text without the // and /* */ comments of JSONC (comment marks inside strings stay)."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':                                   # copy a string, escapes included
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            i = end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def load_jsonc(path: Path) -> dict:
    """Parse a JSONC file (comments allowed, trailing commas not, as the schema says)."""
    return json.loads(strip_jsonc(path.read_text()))


@pytest.fixture(scope="module")
def config() -> dict:
    """.devcontainer/devcontainer.json as data."""
    return load_jsonc(DEVCONTAINER)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft201909Validator:
    """A validator of the vendored official schema (draft 2019-09)."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def schema_errors(validator, document: dict) -> list[str]:
    """Every schema violation of `document`, as readable lines."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(document)]


def test_jsonc_comments_go_and_strings_stay():
    text = '{\n  // a comment\n  "url": "https://example.org/a//b", /* block */ "n": 1\n}\n'
    assert json.loads(strip_jsonc(text)) == {"url": "https://example.org/a//b", "n": 1}
    assert json.loads(strip_jsonc('{"q": "say \\"//\\" twice"}')) == {"q": 'say "//" twice'}


def test_devcontainer_file_has_comments_so_plain_json_would_refuse_it():
    with pytest.raises(json.JSONDecodeError):
        json.loads(DEVCONTAINER.read_text())


def test_devcontainer_matches_the_official_schema(config, validator):
    assert schema_errors(validator, config) == []


@pytest.mark.parametrize("change", [
    ("forwardPorts", ["jupyter"]),                       # not a port
    ("hostRequirements", {"cpus": 2, "memory": "8 GB"}),  # the schema wants "8gb"
    ("postCreateComand", "make setup"),                  # a typo: an unknown property
    ("portsAttributes", {"8888": {"onAutoForward": "open"}}),
])
def test_the_schema_rejects_what_codespaces_would_reject(config, validator, change):
    key, value = change
    broken = copy.deepcopy(config)
    broken[key] = value
    assert schema_errors(validator, broken), f"{key}={value!r} was accepted"


def test_image_and_features_are_pinned_to_exact_versions(config):
    assert EXACT_IMAGE.match(config["image"]), config["image"]
    assert config["features"], "Java 17 comes from a feature"
    for ref in config["features"]:
        assert EXACT_FEATURE.match(ref), f"{ref} is not pinned to an exact version"
    assert "latest" not in DEVCONTAINER.read_text()


def test_python_311_and_java_17(config):
    assert "-3.11-" in config["image"]
    java = next(opts for ref, opts in config["features"].items() if "/java:" in ref)
    assert java["version"] == "17"
    assert java["installMaven"] is True          # the local stack resolves its jars with mvn


def test_setup_runs_once_and_prepares_the_stack(config):
    assert config["postCreateCommand"] == "bash .devcontainer/post-create.sh"
    assert POST_CREATE.stat().st_mode & 0o111, "post-create.sh must be executable"
    subprocess.run(["bash", "-n", str(POST_CREATE)], check=True)   # syntax only
    script = POST_CREATE.read_text()
    for command in ("set -euo pipefail", "apt-get install -y -qq mariadb-server", "make setup",
                    "make up"):
        assert command in script


def make_targets() -> set[str]:
    """The targets the Makefile defines."""
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(), flags=re.MULTILINE))


def lab_port() -> int:
    """The port `make lab` serves JupyterLab on (JupyterLab's default unless the Makefile sets one)."""
    recipe = MAKEFILE.read_text().split("\nlab:", 1)[1].split("\n\n", 1)[0]
    found = re.search(r"--(?:ServerApp\.)?port[= ](\d+)", recipe)
    return int(found.group(1)) if found else JUPYTER_DEFAULT_PORT


def test_course_starts_with_make_lab_and_its_port_is_forwarded(config):
    assert {"setup", "up", "lab"} <= make_targets()
    assert "make lab" in config["postAttachCommand"].values()
    port = lab_port()
    assert port in config["forwardPorts"]
    assert config["portsAttributes"][str(port)]["label"] == "JupyterLab"


def test_host_requirements_are_a_codespace_that_exists(config):
    needs = config["hostRequirements"]
    memory_gb = int(needs["memory"].removesuffix("gb"))
    # Codespaces machine types: 2 cores/8 GB, 4/16, 8/32, 16/64, 32/128
    assert (needs["cpus"], memory_gb) in {(2, 8), (4, 16), (8, 32), (16, 64), (32, 128)}
