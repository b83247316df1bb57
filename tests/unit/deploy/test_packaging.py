"""Packaging facts a user or a packager relies on: the license, pyproject metadata, the image's exact
versions, and a compose file that older docker-compose (1.29, still shipped by distributions) accepts."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_is_the_mit_license_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert PYPROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["classifiers"]


def test_classifiers_match_requires_python() -> None:
    assert PYPROJECT["requires-python"] == ">=3.11"
    versions = {c.rsplit(" :: ", 1)[1] for c in PYPROJECT["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)}
    assert versions and min(versions, key=Version) == "3.11"


def test_no_project_urls_until_the_project_has_a_real_home() -> None:
    # The project has no public repository or site yet: a published package must not link to invented
    # addresses (they were https://github.com/kbbot/kbbot…). Add [project.urls] with the real one.
    assert "urls" not in PYPROJECT
    assert "github.com/kbbot" not in (ROOT / "deploy" / "kbbot.service").read_text()


def test_image_constraints_pin_every_dependency_within_pyproject_bounds() -> None:
    pins = _image_pins()
    extras = _image_extras()
    assert {"redis", "tantivy"} <= extras  # REDIS_URL and SEARCH_ENGINE=tantivy work in the image
    for readme in (ROOT / "README.md", ROOT / "deploy" / "README.md"):
        assert "has the `redis` and `tantivy` extras" in " ".join(readme.read_text().split()), readme
    required = [Requirement(r) for r in PYPROJECT["dependencies"]]
    required += [Requirement(r) for extra in sorted(extras) for r in PYPROJECT["optional-dependencies"][extra]]
    for requirement in required:
        name = _normalize(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {requirement}"


def test_image_constraints_pin_what_the_pinned_libraries_require() -> None:
    # pip --constraint only narrows what is installed: a library left out (lazy-importer, which
    # importlib_metadata 10.2 requires, was) is installed at whatever version is newest on the day of the build.
    # Each pinned library installed here at its pinned version tells its requirements (on the image's Linux and
    # Python 3.11); libraries installed here at another version cannot, and are skipped.
    pins = _image_pins()
    image = {key: str(value) for key, value in default_environment().items()} | {
        "python_version": "3.11", "python_full_version": "3.11.9", "sys_platform": "linux",
        "platform_system": "Linux", "os_name": "posix", "extra": "",
    }  # fmt: skip
    unpinned: set[str] = set()
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        checked += 1
        for requirement in map(Requirement, dist.requires or []):
            applies = requirement.marker is None or requirement.marker.evaluate(image)
            if applies and _normalize(requirement.name) not in pins:
                unpinned.add(f"{requirement.name} (for {name})")
    assert checked >= len(pins) // 2, "too few pinned libraries installed at their pin to check this"
    assert not unpinned, f"not pinned in deploy/constraints.txt: {sorted(unpinned)}"


def _image_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[_normalize(name)] = Version(version)
    return pins


def _image_extras() -> set[str]:
    """The extras deploy/Dockerfile installs: ``pip install … ".[redis,tantivy]"``."""
    (extras,) = re.findall(r'^RUN pip install .*"\.\[([a-z,]+)\]"$', (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    return set(extras.split(","))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_compose_file_validates_with_docker_compose_1_29_schema() -> None:
    # Source: docker/compose, tag 1.29.2, compose/config/compose_spec.json (copied verbatim); 1.29 validates
    # with jsonschema's Draft4Validator (compose/config/validation.py, validate_against_config_schema).
    schema = json.loads((Path(__file__).parent / "compose_spec_1.29.2.json").read_text())
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    errors = [error.message for error in jsonschema.Draft4Validator(schema).iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_what_docker_compose_1_29_rejects() -> None:
    # docker-compose 1.29.2 itself: "'name' does not match any of the regexes: '^x-'".
    schema = json.loads((Path(__file__).parent / "compose_spec_1.29.2.json").read_text())
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    errors = [error.message for error in jsonschema.Draft4Validator(schema).iter_errors({"name": "kbbot", **compose})]
    assert errors == ["'name' does not match any of the regexes: '^x-'"]


def test_the_kubernetes_image_is_a_placeholder_not_an_invented_registry() -> None:
    # ghcr.io/kbbot/kbbot was never published; the manifest names an RFC 2606 host to be replaced.
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.example.com/kbbot:0.1.0"]
