#!/usr/bin/env bash
# Fails if the modules of a crate import each other in a circle.
#
#   bash scripts/check-imports.sh [SRC_DIR ...]     (default: crates/warren-broker/src)
#
# Reads every `crate::…` path (in `use` lines and inline) and every `use super::…` line
# of each .rs file, resolves each to the file of the longest module prefix that exists
# (`crate::queue::Queue` -> queue.rs, `crate::store::codec::x` -> store/codec.rs), and
# looks for cycles among those file-to-file edges. A module reaching into its own
# submodules (`mod args; pub(crate) use args::QueueArgs;`) is containment, not an
# import, and is left out; a submodule using its parent (`use super::Queue`) counts.
# Comments are skipped. Prints each cycle found and exits 1; else prints the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- crates/warren-broker/src
exec python3 - "$@" <<'PY'
import os
import re
import sys

def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)

def code_lines(text):
    """Lines with // comments (and so doc comments) removed; strings are rare enough."""
    for line in text.splitlines():
        i = line.find("//")
        yield line if i < 0 else line[:i]

def use_statements(lines):
    """Whole `use` statements (they may span lines), and the other lines."""
    buf = None
    for line in lines:
        s = line.strip()
        if buf is None and re.match(r"^(pub(\([^)]*\))?\s+)?use\s", s):
            buf = s
        elif buf is not None:
            buf += " " + s
        else:
            yield None, s
            continue
        if buf.endswith(";"):
            yield buf, None
            buf = None

def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(3)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            for e in expand(p):
                out.append(f"{prefix}::{e}" if prefix else e)
    return out

def main(src):
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(dirpath, n)
                files[module_of(src, p)] = os.path.relpath(p, src)
    def resolve(path):
        for k in range(len(path), -1, -1):
            if tuple(path[:k]) in files:
                return tuple(path[:k])
        return None
    edges = {m: set() for m in files}
    for mod, rel in files.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = f.read()
        targets = []
        for stmt, other in use_statements(code_lines(text)):
            if stmt is not None:
                body = re.sub(r"^(pub(\([^)]*\))?\s+)?use\s+", "", stmt).rstrip(";")
                for p in expand(body):
                    segs = [s.strip() for s in p.split(" as ")[0].split("::") if s.strip()]
                    if segs and segs[0] == "crate":
                        targets.append(segs[1:])
                    elif segs and segs[0] == "super":
                        base = list(mod)
                        while segs and segs[0] == "super":
                            base = base[:-1]
                            segs = segs[1:]
                        targets.append(base + segs)
                    # `self::` and `child::` stay inside this module
                line = stmt
            else:
                line = other
            for m in re.finditer(r"(?<![\w:])crate((?:::\w+)+)", line):
                if stmt is None:
                    targets.append(m.group(1).split("::")[1:])
        for t in targets:
            to = resolve([s for s in t if s not in ("*", "self")])
            if to is None or to == mod or to[: len(mod)] == mod:
                continue  # itself, or its own submodule
            edges[mod].add(to)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
                sccs.append(comp)
    sys.setrecursionlimit(10000)
    for v in sorted(files):
        if v not in index:
            visit(v)
    n_edges = sum(len(e) for e in edges.values())
    if not sccs:
        print(f"{src}: no import cycles ({len(files)} files, {n_edges} imports between them)")
        return True
    for comp in sccs:
        members = set(comp)
        print(f"{src}: these files import each other in a circle:")
        for v in sorted(comp):
            into = sorted(files[w] for w in edges[v] if w in members)
            print(f"  {files[v]} -> {', '.join(into)}")
    return False

ok = all([main(d) for d in sys.argv[1:]])
sys.exit(0 if ok else 1)
PY
