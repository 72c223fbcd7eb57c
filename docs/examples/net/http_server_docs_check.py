#!/usr/bin/env python3
"""Checks that every ```cpp block of a Markdown page is code that the build compiles: each
block, with its common indentation removed, must appear as consecutive lines (also with their
common indentation removed) in one of the given source files. Blank lines must match too.

Usage: http_server_docs_check.py PAGE.md SOURCE.cpp [SOURCE.cpp ...]
Exits 1 and names the first line that is not found for each block that does not match.
"""

import sys


def dedent(lines):
    width = min((len(l) - len(l.lstrip(" ")) for l in lines if l.strip()), default=0)
    return [l[width:].rstrip() for l in lines]


def blocks(page):
    out, current, start = [], None, 0
    for n, line in enumerate(open(page).read().splitlines(), 1):
        if current is None and line.strip() == "```cpp":
            current, start = [], n + 1
        elif current is not None and line.strip() == "```":
            out.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return out


def found_in(block, source_lines):
    """True if `block` matches some run of source lines once both are dedented."""
    want = dedent(block)
    n = len(want)
    for i in range(len(source_lines) - n + 1):
        if source_lines[i].strip() != want[0].strip():
            continue
        if dedent(source_lines[i:i + n]) == want:
            return True
    return False


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    page, sources = sys.argv[1], sys.argv[2:]
    texts = [open(s).read().splitlines() for s in sources]
    bad = 0
    all_blocks = blocks(page)
    for start, block in all_blocks:
        if any(found_in(block, t) for t in texts):
            continue
        bad += 1
        # Name the longest prefix that matches, to point at the line that differs.
        k = len(block) - 1
        while k > 0 and not any(found_in(block[:k], t) for t in texts):
            k -= 1
        print("%s:%d: this ```cpp block is not in %s; line %d differs: %r" %
              (page, start, " or ".join(sources), start + k, block[k]))
    if not all_blocks:
        print("%s has no ```cpp block" % page)
        return 1
    if bad:
        return 1
    print("%d code blocks of %s found in the sources" % (len(all_blocks), page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
