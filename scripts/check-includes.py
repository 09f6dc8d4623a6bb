#!/usr/bin/python3
"""Fail when the headers in src/ include each other in a circle.

A header cycle means no header of the circle can be read (or compiled) on
its own, and it is how a layer starts to know about the layers above it.
Each cycle found is printed as `a.h -> b.h -> a.h`.

With --modules, also list the circles among modules (foo.c and foo.h are
one module; foo.c including bar.h is an edge foo -> bar). Those are
printed as notes and do not fail the check: a module pair that calls each
other (a connection and the exchange it runs) is a design choice to be
read, not a build error.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def cycles(graph):
    """Every elementary cycle reachable in graph, each once, as a list of
    nodes starting at its smallest name."""
    found = set()
    out = []

    def walk(start, node, path, on_path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cyc = path[:]
                key = tuple(cyc)
                if key not in found:
                    found.add(key)
                    out.append(cyc + [start])
            elif nxt > start and nxt not in on_path:
                on_path.add(nxt)
                path.append(nxt)
                walk(start, nxt, path, on_path)
                path.pop()
                on_path.discard(nxt)

    for start in sorted(graph):
        walk(start, start, [start], {start})
    return out


def main(argv):
    src = "src"
    modules = "--modules" in argv
    names = sorted(os.listdir(src))
    headers = [n for n in names if n.endswith(".h")]
    graph = {}
    for h in headers:
        graph[h] = {i for i in includes(os.path.join(src, h)) if i in headers}
    bad = cycles(graph)
    for c in bad:
        print("include cycle: " + " -> ".join(c))
    if modules:
        mods = {}
        for n in names:
            if n.endswith(".c") or n.endswith(".h"):
                m = n[:-2]
                deps = {i[:-2] for i in includes(os.path.join(src, n)) if i in headers}
                mods.setdefault(m, set()).update(deps - {m})
        for c in cycles(mods):
            print("note: modules depend on each other: " + " -> ".join(c))
    if bad:
        print("%d include cycle(s) among src/*.h" % len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
