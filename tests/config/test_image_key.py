"""The `image:` key: a URI or an image-builder mapping, validated with locations, layered like every
setting, shown by `explain` (as not used locally) and compared by `diff`; the schema agrees."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from flyte_decl.config.load import load
from flyte_decl.config.schema import json_schema


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("{pip: [x]}", "environments.yaml:4:13: error: environments.a.image.pip: unknown key"),
        (
            '{python_version: "3"}',
            "environments.yaml:4:29: error: environments.a.image.python_version: '3' is not a valid value",
        ),
        (
            "{python_version: 3.12}",
            "environments.yaml:4:29: error: environments.a.image.python_version: must be a string, got a float "
            '(quote it: "3.12")',
        ),
        (
            "{env: {1BAD: x}}",
            "environments.yaml:4:19: error: environments.a.image.env.1BAD: '1BAD' is not a valid name",
        ),
        (
            "{pip_packages: numpy}",
            "environments.yaml:4:27: error: environments.a.image.pip_packages: must be a list, got a string",
        ),
        (
            "{name: My_App}",
            "environments.yaml:4:19: error: environments.a.image.name: 'My_App' is not a valid value",
        ),
        (
            "42",
            'environments.yaml:4:12: error: environments.a.image: must be a string, got an integer (quote it: "42")',
        ),
    ],
)
def test_bad_image_is_reported_at_its_location(flyte_decl, write, image, error):
    path = write(f"version: 1\nenvironments:\n  a:\n    image: {image}\n")
    result = flyte_decl("validate")
    assert (result.code, result.out.splitlines()) == (1, [error, "1 error"])
    document = yaml.safe_load(path.read_text())
    assert not jsonschema.Draft202012Validator(json_schema()).is_valid(document)


CONFIG = """
version: 1
defaults:
  image: {python_version: "3.12", pip_packages: [numpy], env: {A: "1", B: "1"}}
environments:
  uri:
    image: ghcr.io/acme/app:1
    tasks:
      t: {fn: "m:t"}
      built: {fn: "m:b", image: {base_image: "python:3.12-slim", requirements: requirements.txt}}
  merged:
    image: {env: {B: "2"}, apt_packages: [git], registry: ghcr.io/acme, name: app}
    tasks:
      t: {fn: "m:t"}
"""


def test_image_layers_like_every_setting(write):
    path = write(CONFIG)
    assert jsonschema.Draft202012Validator(json_schema()).is_valid(yaml.safe_load(path.read_text()))
    tasks = load([path]).tasks
    assert tasks["uri.t"].section("image") == {} and tasks["uri.t"].value("image") == "ghcr.io/acme/app:1"
    assert tasks["uri.built"].value("image") is None  # a mapping replaces a URI
    assert tasks["uri.built"].section("image") == {
        "base_image": "python:3.12-slim",
        "requirements": "requirements.txt",
    }
    assert tasks["merged.t"].section("image") == {  # mappings merge key by key, as env_vars do
        "python_version": "3.12",
        "pip_packages": ["numpy"],
        "env.A": "1",
        "env.B": "2",
        "apt_packages": ["git"],
        "registry": "ghcr.io/acme",
        "name": "app",
    }


def test_explain_shows_the_image_and_that_local_runs_do_not_use_it(flyte_decl, write):
    write(CONFIG)
    result = flyte_decl("explain", "merged.t", "--format", "json")
    data = json.loads(result.out)
    fields = {f["path"]: (f["value"], f["layer"], f["line"]) for f in data["fields"]}
    assert fields["image.env.B"] == ("2", "environment merged", 11)
    assert fields["image.python_version"] == ("3.12", "defaults", 3)
    assert data["notes"] == [
        "image is not used by local runs (they use this Python); `flyte-decl export flyte` deploys it"
    ]
    text = flyte_decl("explain", "uri.t").out
    assert text.splitlines()[-1] == (
        "  note: image is not used by local runs (they use this Python); `flyte-decl export flyte` deploys it"
    )


def test_diff_reports_image_changes(flyte_decl, write):
    write(CONFIG, "old.yaml")
    write(CONFIG.replace("ghcr.io/acme/app:1", "ghcr.io/acme/app:2"), "new.yaml")
    result = flyte_decl("diff", "old.yaml", "new.yaml")
    assert result.code == 1
    assert result.out.splitlines()[0].split() == [
        "uri.t", "image", "ghcr.io/acme/app:1", "->", "ghcr.io/acme/app:2", "(environment", "uri,", "new.yaml:6)"
    ]  # fmt: skip
