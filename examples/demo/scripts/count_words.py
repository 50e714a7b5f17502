"""Demo step 1: count the words of a text file and write them as JSON."""
import collections
import json
import os
import sys
import time

source, target, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(pause)  # long enough to watch the job go through RUNNING in `batchctl status`
with open(source, encoding="utf-8") as handle:
    counts = collections.Counter(handle.read().split())
os.makedirs(os.path.dirname(target), exist_ok=True)
with open(target + ".tmp", "w", encoding="utf-8") as handle:
    json.dump(dict(counts.most_common()), handle, indent=1)
os.replace(target + ".tmp", target)  # the output appears only once it is complete
print(f"{source}: {sum(counts.values())} words, {len(counts)} distinct")
