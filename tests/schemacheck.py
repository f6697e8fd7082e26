"""schemacheck.py - the tests' one way to check a --json output against
vnetshare/schema/vnetshare.json (docs/cli.md, "JSON output").

Every test tree imports it (`from schemacheck import schema_errors`: tests/
is on sys.path through tests/conftest.py): the unit tests with the shapes
written by hand, the netns tests with what the commands really print.
"""
from __future__ import annotations

import json
from importlib import resources

import jsonschema


def schema() -> dict:
    """The schema the package ships."""
    return json.loads(resources.files("vnetshare").joinpath("schema/vnetshare.json").read_text())


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of the definition @name ($defs/@name)."""
    return jsonschema.Draft202012Validator({**schema(), "$ref": f"#/$defs/{name}"})


def schema_errors(name: str, instance) -> list[str]:
    """What is wrong with @instance as a $defs/@name, one line each (the
    path in the instance, then the message); [] if it is one."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(name).iter_errors(instance)]
