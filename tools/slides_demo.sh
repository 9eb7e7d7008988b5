#!/usr/bin/env bash
# End to end from real slides, without Python in the pipeline itself: the two shipped slides
# (tests/data/slides) -> `libramil patch` -> `libramil extract` (EfficientNet-Lite0 on our own
# engine) -> a documented toy labelling (tools/toy_bags.py: each slide's patches cut into 8
# bands of tissue, labelled by the slide they come from; the only Python step, since two slides
# are too few bags for a few-shot protocol) -> `libramil train --model abmil` at 2 shots ->
# `libramil heatmap`: fold 0's attention over both slides.
# The task says nothing about pathology: it shows the pipeline runs, in a few minutes.
#
# Usage: tools/slides_demo.sh [OUT]   (default slides_demo/; needs tools/setup.sh and a build)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-slides_demo}
bin=$repo/build/libramil
slides=$repo/tests/data/slides
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "slides_demo: $out exists and is not empty; give another folder" >&2
  exit 1
fi
mkdir -p "$out"
# The TCGA region carries no microns-per-pixel metadata: 0.5 um/px (20x) is given for it.
printf 'slide,mpp\ntcga-cr-7395-01a-01-ts1,0.5\n' > "$out/mpp.csv"
"$bin" patch --slides "$slides" --mpp-csv "$out/mpp.csv" --out "$out/run"
"$bin" extract --slides "$slides" --patches "$out/run" --out "$out/run"
/usr/bin/python3 "$repo/tools/toy_bags.py" "$out/run/20x_256px_0px_overlap/features_efficientnet-lite0" "$out/toy" --bands 8
"$bin" train --model abmil --features "$out/toy" --labels "$out/toy/labels.csv" --shots 2 --folds 3 --epochs 10 \
  --lr 5e-4 --out "$out/train"
# The fold-0 model's attention drawn over both slides (heatmaps, QuPath GeoJSON, galleries).
"$bin" heatmap --slides "$slides" --features "$out/run/20x_256px_0px_overlap/features_efficientnet-lite0" \
  --checkpoint "$out/train/checkpoints/fold_0_best.safetensors" --out "$out/heatmaps"
echo "slides_demo: patches, features, the run and the heatmaps are in $out/"
