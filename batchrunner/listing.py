"""The operation catalogs as data: what `batchrunner operations` prints (or gives as JSON), and
what the docs are checked against."""

from __future__ import annotations

from typing import Any

from batchrunner.platforms.base import Catalog, Operation


def need_of(op: Operation, name: str, required: bool) -> str:
    """How a row must give a field: required, optional, or one of a group."""
    for group in op.one_of:
        if name in group:
            return "one of " + "/".join(group)
    for unless, group in op.one_of_unless:
        if name in group:
            return "one of " + "/".join(group) + f" (unless {unless})"
    return "required" if required else "optional"


def describe_catalog(catalog: Catalog) -> list[dict[str, Any]]:
    """Every operation of a platform with its fields, in catalog order."""
    return [{
        "name": op.name, "wire_name": op.wire_name, "description": op.description,
        "min_api_version": op.min_api_version, "aliases": list(op.aliases),
        "fields": [{"name": f.name, "need": need_of(op, f.name, f.required), "type": f.type.label,
                    "default": f.default, "description": f.description} for f in op.fields],
    } for op in catalog.operations]
