#!/usr/bin/env python3
"""Module order check (ctest lint.module_order).

docs/architecture.md states the module order in one line of arrows,
`core → config → comm → ... → cli`: a module may use only the modules before it (DESIGN.md,
"Modules, bottom to top"). This check fails when
  - a file of module M (include/strata/M/**, src/M/**) includes "strata/D/..." with D after M,
  - CMakeLists.txt's strata_module(M DEPS ...) names a strata_D with D after M,
  - a folder under src/ or include/strata/ is not in the order (a new module must be placed).
Each violation is printed as file:line: what. `--self-test` first checks that the checker
itself catches a wrong-way include and a wrong-way DEPS in a small generated tree.

usage: module_order.py SOURCE_DIR [--self-test]
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]strata/([A-Za-z0-9_]+)/')
MODULE = re.compile(r'strata_module\(\s*([A-Za-z0-9_]+)\s+DEPS([^)]*)\)', re.S)
SOURCE = re.compile(r'\.(h|hh|hpp|c|cc|cpp|cu|cuh)$')


def module_order(root):
    path = os.path.join(root, "docs", "architecture.md")
    for line in open(path, encoding="utf-8"):
        if line.count("→") >= 3 and "`core" in line:
            names = re.findall(r"[a-z_]+", line.split("`")[1])
            return names, path
    sys.exit(f"{path}: no line of the form `core → config → ... → cli` (the module order)")


def check(root):
    order, order_file = module_order(root)
    rank = {m: i for i, m in enumerate(order)}
    errors = []
    for base in (os.path.join(root, "include", "strata"), os.path.join(root, "src")):
        if not os.path.isdir(base):
            continue
        for module in sorted(os.listdir(base)):
            folder = os.path.join(base, module)
            if not os.path.isdir(folder):
                continue
            if module not in rank:
                errors.append(f"{folder}: module '{module}' is not in the order of {order_file}")
                continue
            for dirpath, _, files in os.walk(folder):
                for name in sorted(files):
                    if not SOURCE.search(name):
                        continue
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8", errors="replace") as f:
                        for lineno, line in enumerate(f, 1):
                            m = INCLUDE.match(line)
                            if not m:
                                continue
                            dep = m.group(1)
                            if dep not in rank:
                                errors.append(f"{path}:{lineno}: includes module '{dep}', which is not in the order")
                            elif rank[dep] > rank[module]:
                                errors.append(f"{path}:{lineno}: module '{module}' includes '{dep}', which comes "
                                              f"after it ({' → '.join(order)})")
    cmake = os.path.join(root, "CMakeLists.txt")
    if os.path.isfile(cmake):
        text = open(cmake, encoding="utf-8").read()
        for m in MODULE.finditer(text):
            module = m.group(1)
            lineno = text.count("\n", 0, m.start()) + 1
            for dep in re.findall(r"\bstrata_([A-Za-z0-9_]+)\b", m.group(2)):
                if module in rank and dep in rank and rank[dep] > rank[module]:
                    errors.append(f"{cmake}:{lineno}: strata_module({module}) depends on strata_{dep}, "
                                  f"which comes after it")
    return order, errors


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "docs"))
        with open(os.path.join(tmp, "docs", "architecture.md"), "w", encoding="utf-8") as f:
            f.write("modules `core → config → comm → kernels`, in order\n")
        for d in ("src/core", "src/kernels", "include/strata/config"):
            os.makedirs(os.path.join(tmp, d))
        with open(os.path.join(tmp, "src/kernels/ok.cpp"), "w") as f:
            f.write('#include "strata/core/error.hpp"\n#include "strata/config.hpp"\n')
        with open(os.path.join(tmp, "include/strata/config/bad.hpp"), "w") as f:
            f.write('#pragma once\n#include "strata/kernels/cpu/matmul.hpp"\n')
        with open(os.path.join(tmp, "CMakeLists.txt"), "w") as f:
            f.write("strata_module(core DEPS Threads::Threads)\nstrata_module(comm DEPS strata_core strata_kernels)\n")
        _, errors = check(tmp)
        expected = ["bad.hpp:2: module 'config' includes 'kernels'", "strata_module(comm) depends on strata_kernels"]
        missing = [e for e in expected if not any(e in err for err in errors)]
        if missing or len(errors) != 2:
            sys.exit("module_order.py self-test failed: expected exactly " + "; ".join(expected) + ", got:\n  " +
                     "\n  ".join(errors))
    print("module_order.py: self-test passed (a wrong-way include and a wrong-way DEPS are caught)")


def main():
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    if len(args) != 1:
        sys.exit(__doc__)
    if "--self-test" in sys.argv:
        self_test()
    order, errors = check(args[0])
    if errors:
        print("\n".join(errors))
        sys.exit(f"module order: {len(errors)} violation(s) of {' → '.join(order)}")
    print(f"module order: every include and DEPS follows {' → '.join(order)}")


if __name__ == "__main__":
    main()
