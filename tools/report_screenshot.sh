#!/usr/bin/env bash
# A screenshot of an HTML report (or any page) with headless Chromium, for looking at what
# `libramil report` draws without a desktop: Debian's `chromium` package (not installed by
# tools/setup.sh; `apt-get install chromium`). Not part of the test suite.
#
# Usage: tools/report_screenshot.sh REPORT.html OUT.png [WIDTH] [HEIGHT]   (default 1280 x 4000)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: tools/report_screenshot.sh REPORT.html OUT.png [WIDTH] [HEIGHT]" >&2
  exit 2
fi
page=$(realpath "$1")
out=$2
if [ ! -f "$page" ]; then echo "report_screenshot: $1: no such file" >&2; exit 1; fi
if ! command -v chromium >/dev/null; then echo "report_screenshot: needs chromium (apt-get install chromium)" >&2; exit 1; fi
tmp="$out.tmp.$$.png"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="${3:-1280},${4:-4000}" \
  --screenshot="$tmp" "file://$page" >/dev/null 2>&1
if [ ! -s "$tmp" ]; then rm -f "$tmp"; echo "report_screenshot: chromium wrote no picture for $page" >&2; exit 1; fi
mv "$tmp" "$out"
echo "report_screenshot: $out"
