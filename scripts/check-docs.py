#!/usr/bin/env python3
"""`make doc-check`: the documents stay inside the repository and their links resolve.

- every relative link of a tracked Markdown file ([text](path) or ![alt](path)) names a file or
  directory of the repository, and its #anchor a heading of the Markdown file it points to;
- no tracked document, YAML file, script or Makefile names a path outside the repository: a
  parent of the checkout (`../shared/...`) or a build machine's absolute paths (/work/, /root/,
  /home/, /tmp/ in prose).

Prints each problem as FILE:LINE: what, and exits 1 if there is any. Standard library only.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)\)")
# A path that leaves the checkout, or one of a build machine's directories.
OUTSIDE = re.compile(r"(?<![\w.])\.\./shared\b|(?<![\w.:/-])/(?:work|root|home|tmp)/")
# Documents and YAML anywhere; the scripts of scripts/ and bench/ (tests may use temporary paths).
SCANNED = re.compile(r"(\.md|\.ya?ml)$|^Makefile$|^(scripts|bench)/.*\.(sh|py)$")


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [p for p in out.stdout.splitlines() if (ROOT / p).is_file()]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    found, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} +(.+?) *#*$", line)):
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            found.add(s if n == 0 else f"{s}-{n}")
    return found


def check_links(rel, problems):
    path = ROOT / rel
    fenced = False
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if ROOT not in dest.parents and dest != ROOT:
                problems.append(f"{rel}:{no}: link {target} leaves the repository")
            elif not dest.exists():
                problems.append(f"{rel}:{no}: link {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{rel}:{no}: link {target}: no heading #{anchor} in "
                                f"{dest.relative_to(ROOT)}")


def main():
    problems = []
    for rel in tracked():
        if rel.endswith(".md"):
            check_links(rel, problems)
        if SCANNED.search(rel) and rel != "scripts/check-docs.py":
            for no, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1):
                if m := OUTSIDE.search(line):
                    problems.append(f"{rel}:{no}: {m.group(0)!r} is a path outside the repository")
    for p in problems:
        print(p)
    print(f"doc-check: {len(problems)} problem(s)" if problems else "doc-check: links and paths ok")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
