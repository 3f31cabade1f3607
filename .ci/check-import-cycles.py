#!/usr/bin/env python3
"""Fail if the files of a crate's src/ import each other in a circle
(swarm/src by default; another directory as the first argument).

An edge A -> B means file A has a `use crate::…` or `use super::…` that
names a module in file B (a module declaration `mod x;` and a `pub use`
re-export are structure, not imports). Prints every cycle found; exit 1 if any.
"""
import os
import re
import sys

ROOT = (
    os.path.abspath(sys.argv[1])
    if len(sys.argv) > 1
    else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "swarm", "src")
)
LABEL = os.path.relpath(ROOT, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("lib", "mod"):
        rel = rel[:-1]
    return tuple(rel)


files = {}
for dirpath, _, names in os.walk(ROOT):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(dirpath, n)
            files[module_of(p)] = p


def resolve(current, path):
    """The longest module prefix of a `use` path that is a file."""
    parts = path.split("::")
    if parts[0] == "crate":
        base = []
        parts = parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(current)
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    elif (*current, parts[0]) in files:
        base = list(current)  # a child module named without `self::`
    else:
        return None  # another crate
    best = None
    for i in range(len(parts) + 1):
        cand = tuple(base + parts[:i])
        if cand in files:
            best = cand
    return best


# Private `use` only: a `pub use` re-exports a module's items from its
# parent (structure, like `mod x;`), it is not the parent depending on them.
USE = re.compile(r"^\s*use\s+([^;]+);", re.M)
edges = {m: set() for m in files}
for mod, path in files.items():
    if path.endswith(os.path.join("", "tests.rs")):
        continue  # unit tests import their parent by design
    text = open(path).read()
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    for m in USE.finditer(text):
        spec = re.sub(r"\s+", "", m.group(1))
        # expand one level of braces: a::{b, c::d} -> a::b, a::c::d
        mm = re.match(r"^(.*?)::\{(.*)\}$", spec)
        paths = [spec]
        if mm:
            paths = []
            depth, cur, items = 0, "", []
            for ch in mm.group(2):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    items.append(cur)
                    cur = ""
                else:
                    cur += ch
            items.append(cur)
            for it in items:
                it = re.sub(r"\{.*\}", "", it)
                paths.append(mm.group(1) + ("::" + it if it and it != "self" else ""))
        for p in paths:
            target = resolve(mod, p)
            if target is not None and target != mod and target != ():
                edges[mod].add(target)

# Find cycles with a DFS.
cycles = []
state = {}
stack = []


def dfs(v):
    state[v] = 1
    stack.append(v)
    for w in sorted(edges[v]):
        if state.get(w) == 1:
            cycles.append(stack[stack.index(w):] + [w])
        elif w not in state:
            dfs(w)
    stack.pop()
    state[v] = 2


for v in sorted(edges):
    if v not in state:
        dfs(v)

name = lambda m: "::".join(m) or "crate"
if cycles:
    for c in cycles:
        print("import cycle: " + " -> ".join(name(m) for m in c))
    sys.exit(1)
print(f"no import cycle among {len(files)} files of {LABEL}")
