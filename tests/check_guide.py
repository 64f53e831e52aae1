#!/usr/bin/env python3
"""Fails when a C excerpt of docs/guide.md is not, character for
character, part of the example file it names.

Every ```c block of the guide must follow a line
    <!-- from examples/<file>.c -->
(blank lines between are allowed), and its text must appear verbatim in
that file, which the build compiles and CTest runs: so the guide quotes
only code that compiles and does what the guide says.

    check_guide.py <docs/guide.md> <source root>
"""
import os
import re
import sys


def main(guide, root):
    with open(guide, encoding="utf-8") as f:
        lines = f.read().split("\n")
    bad, blocks = [], 0
    source = None
    i = 0
    while i < len(lines):
        m = re.match(r"^<!-- from (\S+) -->$", lines[i].strip())
        if m:
            source = m.group(1)
        elif lines[i].startswith("```c"):
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            block = "\n".join(lines[start:j])
            blocks += 1
            where = "docs/guide.md:%d" % (start)
            if source is None:
                bad.append("%s: a C block with no '<!-- from examples/... -->' line" % where)
            else:
                path = os.path.join(root, source)
                if not os.path.exists(path):
                    bad.append("%s: %s does not exist" % (where, source))
                else:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                    if block not in text:
                        bad.append("%s: the block is not verbatim in %s" % (where, source))
            source = None
            i = j
        elif lines[i].strip():
            source = None if not lines[i].startswith("<!--") else source
        i += 1
    for b in bad:
        print("FAILED: " + b)
    print("%d C blocks checked, %d problems" % (blocks, len(bad)))
    if blocks == 0:
        print("FAILED: no C block found in the guide")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
