#!/usr/bin/env python3
"""Fault injection over every output a libramil command writes (the non-default reliability
suite of docs/reliability.md). Builds tools/fault_inject.c into a preload library, runs the
command once cleanly to count its output events (writes to regular files and renames), then at
up to --points events spread over that count:

  kill    the process is killed (SIGKILL) at that event;
  enospc  that write and all later ones fail with ENOSPC; the command must exit non-zero with one
          "libramil: error:" line as its last and leave no temporary file;
then, in both modes, the same work is run again with the disk back (train: --resume; simulate:
--overwrite; patch: the same command): it must succeed, leave no temporary file, and end with
outputs equal to the clean run's (so nothing half-written was left under a real name, and the
directory could be resumed).

Scenarios (--scenario, default all): patch (both shipped slides), simulate (6 small bags), train
(a tiny 2-fold dataset, resumed with --resume after a kill). Outputs are compared byte for byte
except timing fields, listed per scenario (summary.csv's seconds, status JSON times, HDF5 files
compared through h5py's datasets and attributes).

usage: tools/fault_inject.py --libramil build/libramil [--scenario patch|simulate|train] [--points 15]
                             [--modes kill,enospc] [--work DIR]
Exits 1 on any violation, printing each; prints a summary line 'N passed, M failed'.
"""
import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(REPO, ".venv", "bin", "python")
if not os.path.exists(PY):
    PY = "/usr/bin/python3"


def build_shim(work):
    so = os.path.join(work, "fault_inject.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, os.path.join(REPO, "tools", "fault_inject.c"), "-ldl"],
                   check=True)
    return so


def run(cmd, shim, env_extra, log):
    env = dict(os.environ, LD_PRELOAD=shim, **env_extra)
    with open(log, "w") as f:
        return subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode


def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = p
    return out


def normalise(rel, path, root):
    """The comparable content of an output file: the run directory's own path replaced, timing
    fields removed (CSV columns named seconds, status JSON seconds_*, a fold result's epoch times),
    HDF5 through h5py's datasets and attributes; None for files that only carry times."""
    if rel.endswith(".h5"):
        import h5py
        with h5py.File(path, "r") as f:
            items = []
            f.visititems(lambda n, o: items.append((n, o[()].tobytes() if hasattr(o, "shape") else None,
                                                    sorted((k, str(v)) for k, v in o.attrs.items()))))
            return repr((items, sorted((k, str(v)) for k, v in f.attrs.items())))
    if rel.endswith(".log") or rel.endswith("report.html") or rel.endswith(".lock"):
        return None
    with open(path, "rb") as f:
        data = f.read().replace(os.path.abspath(root).encode(), b"<run>")
    if rel.endswith(".json") and "/status/" in "/" + rel:
        j = json.loads(data)
        return json.dumps({k: v for k, v in j.items() if not k.startswith("seconds")}, sort_keys=True)
    if re.search(r"(^|/)fold_\d+_result\.json$", rel):
        j = json.loads(data)
        for e in j.get("epochs", []):
            e[3] = 0  # the epoch's seconds
            if len(e) > 8:
                e[8] = 0  # and the wall-clock time it ended
        return json.dumps(j, sort_keys=True)
    if rel.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(data.decode())))
        if rows and "seconds" in rows[0]:
            i = rows[0].index("seconds")
            rows = [r[:i] + r[i + 1:] for r in rows]
        return repr(rows)
    return data


def temporaries(root):
    return [r for r in files(root) if re.search(r"(^|/)\.[^/]*\.tmp", r) or r.endswith(".tmp")]


def compare(clean, got, require_all):
    """Problems: files differing from the clean run's, and (require_all) files missing."""
    problems = []
    c, g = files(clean), files(got)
    for rel, p in g.items():
        if rel in c:
            a, b = normalise(rel, c[rel], clean), normalise(rel, p, got)
            if a is not None and a != b:
                problems.append(f"{rel} differs from the clean run's")
        elif not re.search(r"(^|/)\.[^/]*\.tmp", rel) and not rel.endswith(".lock"):
            problems.append(f"{rel} is not an output of the clean run")
    if require_all:
        problems += [f"{rel} missing" for rel in c if rel not in g and normalise(rel, c[rel], clean) is not None]
    return problems


def scenarios(libramil, work):
    slides = os.path.join(REPO, "tests", "data", "slides")
    mpp = os.path.join(work, "mpp.csv")
    with open(mpp, "w") as f:
        f.write("slide,mpp\ntcga-cr-7395-01a-01-ts1,0.5\n")
    tiny = os.path.join(work, "tiny")
    if not os.path.exists(tiny):
        subprocess.run([PY, os.path.join(REPO, "tools", "make_tiny_dataset.py"), tiny, "--classes", "2",
                        "--per-class", "6", "--dim", "16", "--folds", "2", "--seed", "3"], check=True,
                       stdout=subprocess.DEVNULL)
    train_common = ["--data_csv", os.path.join(tiny, "labels.csv"), "--data_split_json", os.path.join(tiny, "split.json"),
                    "--h5_file_dir", os.path.join(tiny, "features"), "--instance_path", os.path.join(tiny, "instance_priors.json"),
                    "--bag_path", os.path.join(tiny, "bag_priors.csv"),
                    "--instance_embeddings", os.path.join(tiny, "z_ins.safetensors"),
                    "--bag_embeddings", os.path.join(tiny, "z_bag.safetensors"), "--epochs", "2", "--folds", "2",
                    "--heads", "2", "--num_vis_prototypes", "3", "--threads", "1", "--quiet"]
    return {
        "patch": (lambda out: [libramil, "patch", "--slides", slides, "--out", out, "--mpp-csv", mpp, "--threads", "1"],
                  lambda out: [libramil, "patch", "--slides", slides, "--out", out, "--mpp-csv", mpp, "--threads", "1"]),
        "simulate": (lambda out: [libramil, "simulate", "--task", "rcc", "--slides", "6", "--size-scale", "0.02",
                                  "--dim", "32", "--out", out, "--seed", "4", "--threads", "1"],
                     lambda out: [libramil, "simulate", "--task", "rcc", "--slides", "6", "--size-scale", "0.02",
                                  "--dim", "32", "--out", out, "--seed", "4", "--threads", "1", "--overwrite"]),
        "train": (lambda out: [libramil, "train", "--save_dir", out] + train_common,
                  lambda out: [libramil, "train", "--resume", out, "--quiet"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--libramil", required=True)
    ap.add_argument("--scenario", default="patch,simulate,train")
    ap.add_argument("--points", type=int, default=15)
    ap.add_argument("--modes", default="kill,enospc")
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="fault_inject_")
    os.makedirs(work, exist_ok=True)
    shim = build_shim(work)
    libramil = os.path.abspath(a.libramil)
    table = scenarios(libramil, work)
    passed = failed = 0
    for name in a.scenario.split(","):
        first, again = table[name]
        base = os.path.join(work, name)
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        clean = os.path.join(base, "clean")
        count_file = os.path.join(base, "count.txt")
        rc = run(first(clean), shim, {"FAULT_COUNT_FILE": count_file}, os.path.join(base, "clean.txt"))
        if rc != 0:
            print(f"{name}: the clean run failed (rc {rc}); see {base}/clean.txt")
            failed += 1
            continue
        events = int(open(count_file).read())
        points = sorted({max(1, round(events * (k + 1) / (a.points + 1))) for k in range(a.points)})
        print(f"{name}: {events} output events; faults at {len(points)} points")
        for mode in a.modes.split(","):
            for at in points:
                out = os.path.join(base, f"{mode}_{at}")
                rc = run(first(out), shim, {"FAULT_AT": str(at), "FAULT_MODE": mode}, out + ".txt")
                problems = []
                if mode == "kill" and rc != -9:
                    problems.append(f"expected a kill at event {at}, got rc {rc}")
                if mode == "enospc":
                    log = open(out + ".txt").read().strip().splitlines()
                    if rc == 0:
                        problems.append(f"exit 0 although a write failed at event {at}")
                    elif rc < 0:
                        problems.append(f"killed by signal {-rc} after a failed write")
                    elif not log or not log[-1].startswith("libramil: error:"):
                        problems.append("no 'libramil: error:' line at the end: " + (log[-1] if log else "(nothing)"))
                    if os.path.exists(out):
                        problems += [f"temporary left after the failure: {t}" for t in temporaries(out)]
                # Then the same work again (a resume for train), with the disk back: it must finish
                # with the clean run's outputs and no temporaries.
                if os.path.exists(out) or name != "train":
                    rc2 = run(again(out), shim, {}, out + ".again.txt")
                    if rc2 != 0:
                        problems.append(f"the rerun failed (rc {rc2}; {out}.again.txt)")
                    elif os.path.exists(out):
                        problems += [f"temporary left: {t}" for t in temporaries(out)]
                        problems += compare(clean, out, require_all=True)
                tag = f"{name} {mode} at {at}/{events}"
                if problems:
                    failed += 1
                    print(f"FAIL {tag}: " + "; ".join(problems[:4]))
                else:
                    passed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
