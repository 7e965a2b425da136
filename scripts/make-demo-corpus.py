#!/usr/bin/env python3
"""Build the demo corpus from Debian packages (see /work/shared/DATA.md-style notes in
docs/data-pipeline.md): the King James Bible, one document per chapter (bible-kjv), and the
fortune cookies, one document per entry (fortunes, fortunes-min), as two JSONL files.

usage: make-demo-corpus.py OUT_DIR
The fortunes keep their real duplicates (the same entry in several files, and the same quote
with another attribution), which the demo's deduplication removes.
"""
import json
import os
import re
import subprocess
import sys

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)

# --- KJV: `bible` prints "Book N" headers before each chapter -----------------------------
text = subprocess.run(["bible", "-p", "/usr/lib", "gen1:1-rev22:21"], check=True,
                      capture_output=True, text=True).stdout
chapters, title, lines = [], None, []
header = re.compile(r"^([1-3]?\s?[A-Z][A-Za-z ]+?) (\d+)$")
for line in text.splitlines():
    m = header.match(line.strip()) if line and not line.startswith(" ") else None
    if m:
        if title and lines:
            chapters.append((title, "\n".join(lines).strip()))
        title, lines = line.strip(), []
    elif title is not None:
        lines.append(line)
if title and lines:
    chapters.append((title, "\n".join(lines).strip()))
with open(os.path.join(out_dir, "kjv.jsonl"), "w") as f:
    for t, body in chapters:
        f.write(json.dumps({"title": t, "text": t + "\n\n" + body}) + "\n")

# --- fortunes: entries separated by a line "%" ----------------------------------------------
fdir = "/usr/share/games/fortunes"
entries = []
for name in sorted(os.listdir(fdir)):
    path = os.path.join(fdir, name)
    if name.endswith((".dat", ".u8")) or os.path.islink(path) or not os.path.isfile(path):
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        for entry in f.read().split("\n%\n"):
            entry = entry.strip("%\n")
            if entry.strip():
                entries.append({"source": name, "text": entry})
with open(os.path.join(out_dir, "fortunes.jsonl"), "w") as f:
    for e in entries:
        f.write(json.dumps(e) + "\n")
print(f"demo corpus: {len(chapters)} KJV chapters, {len(entries)} fortunes in {out_dir}")
