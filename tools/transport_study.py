#!/usr/bin/env python3
"""Issue 23's study: does Libra-MIL's transport reweighting matter? (plan: docs/science.md)

  /usr/bin/python3 tools/transport_study.py run     --out DIR [--jobs 2] [grid flags]
  /usr/bin/python3 tools/transport_study.py analyse --out DIR [--markdown FILE]

`run` simulates the RCC task once per (alignment, seed), pools the seeds of one alignment into
one feature folder (slide names prefixed s<seed>_) with a 25-fold split per shot count (fold
5 * (seed index) + f is fold f of that seed's own 5-fold few-shot split, so every fold only sees
its seed's slides), and trains every variant on every (alignment, shots) pool with `libramil
train` (one thread per run, --jobs runs at once). A run whose logs/final_log.csv lists every
fold is skipped and an interrupted one continues (`train --resume`), so the study can be stopped
and started again. Every variant of one (alignment, shots) cell shares the 25 splits and the
per-fold initialisation seed: the comparisons are paired.

`analyse` reads the runs' logs/final_log.csv and logs/transport_<fold>.csv and writes, with
SciPy (not our own code), mean +- standard error per cell, paired differences against the full
model with a paired t-test and a Wilcoxon signed-rank test, the validation comparison that
decides ask 4, and the spread of the instance weights; results.csv holds every fold.
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# variant name -> extra `libramil train` flags
VARIANTS = {
    "full": ["--model", "libramil"],
    "no_transport": ["--model", "libramil", "--ablation", "no_transport"],
    "no_instance_priors": ["--model", "libramil", "--ablation", "no_instance_priors"],
    "standardised": ["--model", "libramil", "--fusion", "standardised"],
    "abmil": ["--model", "abmil"],
    # ABMIL at Ilse et al.'s own learning rate (added after the start: at train's shared 1e-4 its
    # training loss was still ~0.8 after 20 epochs; docs/science.md)
    "abmil_lr5e-4": ["--model", "abmil", "--lr", "5e-4"],
}


def fmt_align(a):
    return ("%g" % a).replace(".", "p")


def grid_args(p):
    p.add_argument("--out", required=True, help="study directory (data/, pools/, runs/, results)")
    p.add_argument("--libramil", default="build/libramil")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--alignments", default="0,0.5,1")
    p.add_argument("--shots", default="1,4,16")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--slides", type=int, default=90)
    p.add_argument("--size-scale", default="0.02")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--folds", type=int, default=5, help="folds per seed")


def grid(a):
    return ([int(s) for s in a.seeds.split(",")], [float(x) for x in a.alignments.split(",")],
            [int(k) for k in a.shots.split(",")], a.variants.split(","))


class Failed(Exception):
    pass


def sh(cmd, log=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log:
        Path(log).write_text(r.stdout)
    if r.returncode != 0:
        raise Failed("failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stdout[-2000:]))
    return r.stdout


def build_pool(a, out, align, seeds, shots):
    """Simulate each seed, pool them under one alignment; returns the pool directory."""
    pool = out / "pools" / ("align" + fmt_align(align))
    if (pool / "done").exists():
        return pool
    feats = pool / "features"
    feats.mkdir(parents=True, exist_ok=True)
    rows, priors = [], None
    for s in seeds:
        d = out / "data" / ("align%s_seed%d" % (fmt_align(align), s))
        if not (d / "labels.csv").exists():
            sh([a.libramil, "simulate", "--task", "rcc", "--slides", str(a.slides), "--size-scale", a.size_scale,
                "--seed", str(s), "--alignment", str(align), "--threads", "1", "--out", str(d), "--overwrite"])
        p = ((d / "instance_priors.json").read_text(), (d / "bag_priors.csv").read_text())
        if priors is not None and p != priors:
            sys.exit("transport_study: the simulator wrote different priors for seed %d" % s)
        priors = p
        with open(d / "labels.csv") as f:
            for r in csv.DictReader(f):
                name = "s%d_%s" % (s, r["name"])
                link = feats / (name + ".h5")
                if not link.exists():
                    os.symlink((d / "features" / (r["name"] + ".h5")).resolve(), link)
                rows.append((name, r["label"]))
    (pool / "instance_priors.json").write_text(priors[0])
    (pool / "bag_priors.csv").write_text(priors[1])
    (pool / "labels.csv").write_text("name,label\n" + "".join("%s,%s\n" % r for r in rows))
    for k in shots:
        merged = {}
        for i, s in enumerate(seeds):
            d = out / "data" / ("align%s_seed%d" % (fmt_align(align), s))
            tmp = pool / ("split_seed%d_%dshot.json" % (s, k))
            sh([a.libramil, "split", "--labels", str(d / "labels.csv"), "--shots", str(k), "--folds", str(a.folds),
                "--seed", str(s), "--out", str(tmp), "--overwrite"])
            one = json.loads(tmp.read_text())
            for f in range(a.folds):
                for part in ("train", "val", "test"):
                    merged["%s_%d" % (part, i * a.folds + f)] = ["s%d_%s" % (s, n) for n in one["%s_%d" % (part, f)]]
            tmp.unlink()
        (pool / ("split_%dshot.json" % k)).write_text(json.dumps(merged, indent=1))
    (pool / "done").write_text("")
    return pool


def finished(rd, folds):
    """A run is done when its final_log.csv (written after every fold) lists all its folds."""
    f = rd / "logs" / "final_log.csv"
    return f.exists() and len(read_csv(f)) == folds


def run_dir(out, align, variant, k):
    return out / "runs" / ("align" + fmt_align(align)) / ("%s_%dshot" % (variant, k))


def cmd_run(a):
    out = Path(a.out)
    seeds, aligns, shots, variants = grid(a)
    for v in variants:
        if v not in VARIANTS:
            sys.exit("transport_study: unknown variant '%s' (known: %s)" % (v, ", ".join(VARIANTS)))
    jobs = []
    for align in aligns:
        try:
            pool = build_pool(a, out, align, seeds, shots)
        except Failed as e:
            sys.exit("transport_study: " + str(e))
        for k in shots:
            for v in variants:
                rd = run_dir(out, align, v, k)
                if finished(rd, a.folds * len(seeds)):
                    continue
                cmd = [a.libramil, "train", "--labels", str(pool / "labels.csv"), "--features", str(pool / "features"),
                       "--instance_path", str(pool / "instance_priors.json"), "--bag_path", str(pool / "bag_priors.csv"),
                       "--split", str(pool / ("split_%dshot.json" % k)), "--folds", str(a.folds * len(seeds)),
                       "--epochs", str(a.epochs), "--seed", "7", "--threads", "1", "--quiet", "--overwrite",
                       "--out", str(rd)] + VARIANTS[v]
                if (rd / "config.json").exists():  # an interrupted run: continue it
                    cmd = [a.libramil, "train", "--resume", str(rd), "--threads", "1", "--quiet"]
                jobs.append((k, v, align, rd, cmd))
    # The paired comparisons that answer the question first (full, no_transport, ABMIL in every
    # cell), then ask 4's form, then the paper's ablation; longest runs first within each.
    priority = {"full": 0, "no_transport": 0, "abmil": 0, "abmil_lr5e-4": 1, "standardised": 1, "no_instance_priors": 2}
    jobs.sort(key=lambda j: (priority.get(j[1], 3), -j[0], j[1].startswith("abmil")))
    print("transport_study: %d runs to do, %d at a time" % (len(jobs), a.jobs), flush=True)
    t0 = time.time()
    done = [0]

    failures = []

    def one(j):
        k, v, align, rd, cmd = j
        t = time.time()
        rd.parent.mkdir(parents=True, exist_ok=True)
        try:
            sh(cmd, log=str(rd) + ".log")
        except Failed as e:  # the other runs go on; the study reports it at the end
            failures.append(str(e))
            print("  FAILED: alignment %g, %d shots, %s (log: %s.log)" % (align, k, v, rd), flush=True)
            return
        done[0] += 1
        print("  [%d/%d] alignment %g, %d shots, %s: %.0f s (elapsed %.0f s)" %
              (done[0], len(jobs), align, k, v, time.time() - t, time.time() - t0), flush=True)

    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        list(ex.map(one, jobs))
    if failures:
        sys.exit("transport_study: %d of %d runs failed:\n%s" % (len(failures), len(jobs), "\n".join(failures)))
    print("transport_study: all runs done in %.0f s" % (time.time() - t0))


# ---------------------------------------------------------------- analysis
def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def mean_se(x):
    import numpy as np
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def paired(x, y):
    """x - y over paired folds: mean, standard error, paired t p-value, Wilcoxon p-value."""
    import numpy as np
    from scipy import stats
    d = np.asarray(x, float) - np.asarray(y, float)
    m, se = mean_se(d)
    t_p = float(stats.ttest_rel(x, y).pvalue) if np.any(d != 0) else 1.0
    with warnings.catch_warnings():  # small samples with ties: SciPy warns and uses the normal approximation
        warnings.simplefilter("ignore")
        w_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return m, se, t_p, w_p


def cmd_analyse(a):
    import numpy as np
    out = Path(a.out)
    seeds, aligns, shots, variants = grid(a)
    res, rows = {}, []
    for align in aligns:
        for k in shots:
            for v in variants:
                rd = run_dir(out, align, v, k)
                f = rd / "logs" / "final_log.csv"
                if not finished(rd, a.folds * len(seeds)):
                    sys.exit("transport_study: %s is missing or incomplete (run `run` first)" % f)
                fl = read_csv(f)
                res[(align, k, v)] = fl
                for r in fl:
                    fold = int(r["fold"])
                    tr = {}
                    tf = rd / "logs" / ("transport_%d.csv" % fold)
                    if tf.exists():
                        last = read_csv(tf)[-1]
                        tr = {c: last[c] for c in ("w_min", "w_max", "w_ess_fraction", "s_std", "temp_vis")}
                    rows.append(dict(alignment=align, shots=k, variant=v, seed=seeds[fold // a.folds], fold=fold % a.folds,
                                     **{c: r[c] for c in ("val_acc", "val_auc", "test_acc", "test_auc", "test_f1")}, **tr))
    cols = ["alignment", "shots", "variant", "seed", "fold", "val_acc", "val_auc", "test_acc", "test_auc", "test_f1",
            "w_min", "w_max", "w_ess_fraction", "s_std", "temp_vis"]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})

    col = lambda key, m: [float(r[m]) for r in res[key]]
    md = ["<!-- written by tools/transport_study.py analyse -->", ""]
    md += ["### Test accuracy and AUC, mean +- standard error over %d seed x fold pairs" % (len(seeds) * a.folds), ""]
    md += ["| alignment | shots | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    for align in aligns:
        for k in shots:
            cells = []
            for v in variants:
                ma, sa = mean_se(col((align, k, v), "test_acc"))
                mu, su = mean_se(col((align, k, v), "test_auc"))
                cells.append("%.3f +- %.3f / %.3f +- %.3f" % (ma, sa, mu, su))
            md.append("| %g | %d | %s |" % (align, k, " | ".join(cells)))
    md += ["", "Each cell: accuracy / AUC.", ""]
    others = [v for v in variants if v != "full"]
    for metric in ("test_acc", "test_auc"):
        md += ["### Paired differences in %s: full minus each variant (mean +- SE; paired t p; Wilcoxon p)" %
               metric.replace("_", " "), ""]
        md += ["| alignment | shots | " + " | ".join("full - " + v for v in others) + " |",
               "|---|---|" + "---|" * len(others)]
        for align in aligns:
            for k in shots:
                cells = []
                for v in others:
                    m, se, tp, wp = paired(col((align, k, "full"), metric), col((align, k, v), metric))
                    cells.append("%+.3f +- %.3f (%.2g; %.2g)" % (m, se, tp, wp))
                md.append("| %g | %d | %s |" % (align, k, " | ".join(cells)))
        md.append("")
    if "standardised" in variants:
        md += ["### Ask 4's decision, on validation only: standardised minus full (selected epoch)", ""]
        md += ["| alignment | shots | val acc diff (t p; W p) | val AUC diff (t p; W p) |", "|---|---|---|---|"]
        wins, cells_n = 0, 0
        allv = {"val_acc": ([], []), "val_auc": ([], [])}
        for align in aligns:
            for k in shots:
                c = []
                for metric in ("val_acc", "val_auc"):
                    x, y = col((align, k, "standardised"), metric), col((align, k, "full"), metric)
                    allv[metric][0].extend(x)
                    allv[metric][1].extend(y)
                    m, se, tp, wp = paired(x, y)
                    c.append("%+.3f +- %.3f (%.2g; %.2g)" % (m, se, tp, wp))
                    if metric == "val_acc":
                        wins += m > 0
                        cells_n += 1
                md.append("| %g | %d | %s |" % (align, k, " | ".join(c)))
        pa = paired(*allv["val_acc"])
        pu = paired(*allv["val_auc"])
        md += ["", "Whole grid (%d pairs): val acc %+.4f +- %.4f (Wilcoxon p %.2g), val AUC %+.4f +- %.4f (Wilcoxon p %.2g); "
               "standardised has the higher mean val acc in %d of %d cells." %
               (len(allv["val_acc"][0]), pa[0], pa[1], pa[3], pu[0], pu[1], pu[3], wins, cells_n), ""]
    md += ["### Spread of the instance weights at the last epoch (mean over folds of the per-bag means)", ""]
    md += ["| alignment | shots | variant | w min | w max | ESS / N | std of s | temp_vis |", "|---|---|---|---|---|---|---|---|"]
    for align in aligns:
        for k in shots:
            for v in ("full", "standardised"):
                sel = [r for r in rows if r["alignment"] == align and r["shots"] == k and r["variant"] == v and "w_min" in r]
                if not sel:
                    continue
                g = lambda c: np.mean([float(r[c]) for r in sel])
                md.append("| %g | %d | %s | %.3f | %.3f | %.3f | %.2g | %.3f |" %
                          (align, k, v, g("w_min"), g("w_max"), g("w_ess_fraction"), g("s_std"), g("temp_vis")))
    md.append("")
    if a.mil_dir:
        md += mil_tables(Path(a.mil_dir))
    if a.report:
        md += reports(a, out, aligns, shots, variants)
    text = "\n".join(md)
    (out / "study.md").write_text(text)
    if a.markdown:
        Path(a.markdown).write_text(text)
    print(text)


def reports(a, out, aligns, shots, variants):
    """`libramil report` per alignment over every (variant, shots) run: the HTML page, and its
    few-shot curves (test accuracy and AUC vs shots, one line per variant) as SVG files."""
    import re
    md = ["### Reports", ""]
    for align in aligns:
        runs = [str(run_dir(out, align, v, k)) for v in variants for k in shots]
        html = out / ("report_align%s.html" % fmt_align(align))
        sh([a.libramil, "report", *runs, "--slides", "0", "--overwrite", "--out", str(html),
            "--title", "Transport study (issue 23), SIMULATED RCC, alignment %g: %d seeds x %d folds per run"
            % (align, len(grid(a)[0]), a.folds)])
        text = html.read_text()
        start = text.find('id="fewshot"')
        svgs = re.findall(r"<svg.*?</svg>", text[start:], flags=re.S)[:2] if start >= 0 else []
        names = []
        for svg, metric in zip(svgs, ("accuracy", "auc")):
            f = out / ("fewshot_align%s_%s.svg" % (fmt_align(align), metric))
            if 'xmlns=' not in svg[:200]:
                svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
            f.write_text(svg + "\n")
            names.append(f.name)
        md.append("* alignment %g: %s; few-shot curves %s" % (align, html.name, ", ".join(names) or "none"))
    return md + [""]


def mil_tables(d):
    """Musk1 / Elephant: <dataset>_<variant>.json from `libramil mil-benchmark` (same --seed, so
    the 50 folds pair up); Libra-MIL full against each other variant."""
    md = ["### Musk1 and Elephant (mil-benchmark, 5 x 10 folds, random unit vectors as priors)", ""]
    md += ["| dataset | variant | accuracy (mean +- SE over 5 repetitions) | full minus variant, paired over 50 folds (t p; Wilcoxon p) |",
           "|---|---|---|---|"]
    for ds in ("Musk1", "Elephant"):
        runs = {}
        for f in sorted(d.glob(ds + "_*.json")):
            text = f.read_text().strip()
            if text:
                runs[f.stem[len(ds) + 1:]] = json.loads(text)
        if "full" not in runs:
            continue
        for v, j in runs.items():
            diff = "" if v == "full" else "%+.3f +- %.3f (%.2g; %.2g)" % paired(runs["full"]["fold_accuracy"], j["fold_accuracy"])
            md.append("| %s | %s | %.3f +- %.3f | %s |" % (ds, v, j["accuracy_mean"], j["accuracy_se"], diff))
    return md + [""]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    grid_args(r)
    r.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    an = sub.add_parser("analyse")
    grid_args(an)
    an.add_argument("--markdown", help="also write the tables here")
    an.add_argument("--report", action="store_true", help="also run `libramil report` per alignment (HTML and SVG curves)")
    an.add_argument("--mil-dir", help="folder of mil-benchmark JSONs (<dataset>_<variant>.json) to add")
    a = p.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_analyse(a)


if __name__ == "__main__":
    main()
