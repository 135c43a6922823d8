"""Expand the api/v1 block of Lago's config/routes.rb into "METHOD /api/v1/path" lines.

    python tests/tools/lago_routes.py routes.rb > tests/tools/lago_api_v1_routes.txt

Run by hand on a routes.rb fetched from getlago/lago-api (never committed here). Understands the
subset of Rails' routing DSL that file uses: resources/resource with only/param, member and
collection routes (`on:` or blocks), nested blocks, scope module, namespace, explicit verbs.
API-only Rails has no new/edit; `update` answers PATCH and PUT, each counted as a route.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

PLURAL = {
    "index": ("GET", False),
    "create": ("POST", False),
    "show": ("GET", True),
    "update": ("PATCH PUT", True),
    "destroy": ("DELETE", True),
}
SINGULAR = {"create": "POST", "show": "GET", "update": "PATCH PUT", "destroy": "DELETE"}


@dataclass
class Frame:
    nest: str  # prefix of routes declared inside the block
    collection: str  # the resource's collection path (for on: :collection)
    member: str  # the resource's member path (for on: :member)
    mode: str = ""  # "member" / "collection" inside such a block


def _only(line: str, names: dict) -> list[str]:
    match = re.search(r"only:\s*(?:%i\[([^\]]*)\]|\[\])", line)
    if match is None:
        return list(names)
    return [name for name in (match.group(1) or "").split() if name in names]


def expand(text: str) -> list[str]:
    lines = text.splitlines()
    api = next(i for i, line in enumerate(lines) if re.match(r"\s*namespace :api do", line))
    start = next(i for i, line in enumerate(lines) if i > api and re.match(r"\s*namespace :v1 do", line))
    root = Frame("/api/v1", "/api/v1", "/api/v1")
    stack = [root]
    routes: list[str] = []
    for raw in lines[start + 1 :]:
        stripped = raw.split("#", 1)[0].strip()
        if not stripped:
            continue
        if stripped == "end":
            stack.pop()
            if not stack:
                break
            continue
        frame = stack[-1]
        opens = stripped.endswith(" do")
        child = frame
        if m := re.match(r"(resources|resource) :(\w+)", stripped):
            name = m.group(2)
            param = re.search(r"param: :(\w+)", stripped)
            collection = f"{frame.nest}/{name}"
            if m.group(1) == "resource":
                for action in _only(stripped, SINGULAR):
                    routes += [f"{verb} {collection}" for verb in SINGULAR[action].split()]
                child = Frame(collection, collection, collection)
            else:
                member = f"{collection}/:{param.group(1) if param else 'id'}"
                for action in _only(stripped, PLURAL):
                    verbs, on_member = PLURAL[action]
                    routes += [f"{verb} {member if on_member else collection}" for verb in verbs.split()]
                singular_name = name[:-1] if name.endswith("s") else name
                nest = f"{collection}/:{singular_name}_{param.group(1) if param else 'id'}"
                child = Frame(nest, collection, member)
        elif m := re.match(r"(get|post|put|patch|delete) (?::(\w+)|[\"']([^\"']*)[\"'])", stripped):
            verb = m.group(1).upper()
            target = m.group(2) if m.group(2) is not None else m.group(3)
            if "on: :member" in stripped or frame.mode == "member":
                path = f"{frame.member}/{target}"
            elif "on: :collection" in stripped or frame.mode == "collection":
                path = f"{frame.collection}/{target.strip('/')}" if target.strip("/") else frame.collection
            else:  # a leading "/" is still relative to the enclosing scope, as in Rails
                path = f"{frame.nest}/{target.strip('/')}"
            routes.append(f"{verb} {path.rstrip('/')}")
        elif m := re.match(r"namespace :(\w+)", stripped):
            path = f"{frame.nest}/{m.group(1)}"
            child = Frame(path, path, path)
        elif stripped.startswith("collection do"):
            child = Frame(frame.nest, frame.collection, frame.member, "collection")
        elif stripped.startswith("member do"):
            child = Frame(frame.nest, frame.collection, frame.member, "member")
        if opens:
            stack.append(child)
    return routes


if __name__ == "__main__":
    with open(sys.argv[1]) as source:
        for route in expand(source.read()):
            print(route)
