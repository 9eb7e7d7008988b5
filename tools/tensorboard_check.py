#!/usr/bin/env python3
"""Reads TensorBoard event files with TensorBoard's own loader (not libramil's code) and prints
every scalar as JSON: {"<tag>": [[step, value, wall_time], ...]}; for tests/test_tensorboard.cpp.

  python tools/tensorboard_check.py EVENT_FILE_OR_DIR OUT.json
Needs the `tensorboard` package (tools/setup.sh installs it into .venv).
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    src, out = sys.argv[1], sys.argv[2]
    acc = EventAccumulator(src, size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    scalars = {tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    with open(out, "w") as f:
        json.dump({"file_version": acc.file_version, "scalars": scalars}, f)


if __name__ == "__main__":
    main()
