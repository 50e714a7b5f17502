"""Demo step 2: one line per sample from step 1's counts."""
import json
import os
import sys

counts_path, organism, target = sys.argv[1], sys.argv[2], sys.argv[3]
with open(counts_path, encoding="utf-8") as handle:
    counts = json.load(handle)
top = max(counts, key=counts.get) if counts else "-"
line = f"{organism}: {sum(counts.values())} words, most frequent {top!r}\n"
os.makedirs(os.path.dirname(target), exist_ok=True)
with open(target + ".tmp", "w", encoding="utf-8") as handle:
    handle.write(line)
os.replace(target + ".tmp", target)
print(line, end="")
