"""What the documents tell an admin to copy: `make kit`.

- no configuration block in README.md or docs/ sets anything that changes the rest of the proxy's
  stats (Envoy's default tags off, a stats inclusion list).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def code_blocks():
    return [(f.relative_to(ROOT), block) for f in DOCS for block in FENCE.findall(f.read_text())]


def test_docs_copy_nothing_that_changes_envoys_other_stats():
    blocks = [(f, b) for f, b in code_blocks() if "stats_config" in b]
    assert blocks, "no stats_config block in the docs: the Envoy parts to copy moved?"
    for f, block in blocks:
        assert "use_all_default_tags" not in block, f"{f}: {block}"
        assert "stats_matcher" not in block, f"{f}: {block}"
