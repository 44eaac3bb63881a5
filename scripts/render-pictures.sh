#!/usr/bin/env bash
# Regenerates the pictures the README embeds from the offline synth of the prod stack (needs Graphviz `dot`):
# docs/architecture-prod.svg (`aiinfra graph`) and docs/cost-prod.svg (`aiinfra cost --chart`).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs
python -m aiinfra graph --stack prod --format svg --output docs/architecture-prod.svg
python -m aiinfra cost --stack prod --chart > docs/cost-prod.svg.tmp
mv docs/cost-prod.svg.tmp docs/cost-prod.svg
echo "wrote docs/architecture-prod.svg and docs/cost-prod.svg"
