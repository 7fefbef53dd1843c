#!/usr/bin/env python3
"""Checks the workspace's structure (docs/architecture.md), run by `make lint`:

- layers: a crate's normal dependencies point only down (lib <- init, image,
  services <- tools, qemu-tests); crates of one deliverable layer do not
  import each other, except the exceptions listed below with their reason;
- no import circles between the files of a crate (`crate::a` in b.rs and
  `crate::b` in a.rs, directly or through others; test modules excluded).

Prints each violation and exits 1 when there is one.
"""
import os
import re
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Folder prefix -> layer rank; a crate may depend on lower ranks, and on its
# own rank only inside the same top folder's crate family listed in SAME.
LAYERS = [("lib/", 0), ("init/", 1), ("image/", 1), ("services/", 1), ("platform/", 1),
          ("tools/", 2), ("qemu-tests", 2)]
# Same-rank imports that are allowed, with why.
ALLOWED = {
    # init's own crates: eth0 and NTP belong to PID 1 alone.
    ("init", "init/net"), ("init", "init/ntp"),
}


def rank(folder):
    for prefix, r in LAYERS:
        if folder == prefix.rstrip("/") or folder.startswith(prefix):
            return r
    return None


def crates():
    root = tomllib.load(open(os.path.join(ROOT, "Cargo.toml"), "rb"))
    return root["workspace"]["members"]


def layer_violations():
    members = crates()
    by_name = {}
    for m in members:
        pkg = tomllib.load(open(os.path.join(ROOT, m, "Cargo.toml"), "rb"))
        by_name[pkg["package"]["name"]] = m
    out = []
    for m in members:
        pkg = tomllib.load(open(os.path.join(ROOT, m, "Cargo.toml"), "rb"))
        for dep in pkg.get("dependencies", {}):
            if dep not in by_name:
                continue
            d = by_name[dep]
            rm, rd = rank(m), rank(d)
            if rm is None or rd is None:
                out.append(f"{m}: {d} is in no layer of scripts/check-layers.py")
            elif rd > rm or (rd == rm and rm > 0 and (m, d) not in ALLOWED):
                out.append(f"{m} depends on {d}: a layer above or beside it")
    return out


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        if "/bin" in dirpath[len(src):]:
            continue
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split("/")
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            mods[tuple(rel)] = os.path.join(dirpath, f)
    return mods


def references(text, module):
    refs = [m.group(1).strip(":").split("::")
            for m in re.finditer(r"\bcrate((?:::[a-z_][a-z0-9_]*)+)", text)]
    refs += [list(module[:-1]) + m.group(1).strip(":").split("::")
             for m in re.finditer(r"\bsuper((?:::[a-z_][a-z0-9_]*)+)", text)]
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        refs += [p.strip().split("::") for p in m.group(1).split(",") if p.strip()]
    return refs


def cycles_of(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        text = open(path).read()
        cut = text.find("#[cfg(test)]\nmod tests")
        text = re.sub(r"//.*", "", text if cut < 0 else text[:cut])
        for r in references(text, m):
            target = next((tuple(r[:i]) for i in range(len(r), 0, -1) if tuple(r[:i]) in mods), None)
            # A child naming its parent module's items is not a circle.
            if target and target != m and m[:len(target)] != target:
                edges[m].add(target)
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def main():
    problems = layer_violations()
    for m in crates():
        src = os.path.join(ROOT, m, "src")
        if os.path.isdir(src):
            for comp in cycles_of(src):
                names = " <-> ".join("/".join(x) + ".rs" for x in comp)
                problems.append(f"{m}: import circle {names}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"check-layers: {len(crates())} crates, arrows down, no import circles")


if __name__ == "__main__":
    main()
