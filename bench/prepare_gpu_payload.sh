#!/usr/bin/env bash
# Copies the read-only reference data the GPU check needs into the git-ignored
# gpu_payload/ folder, which the device tool carries (the GPU machine has no ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu_payload && mkdir -p gpu_payload/data
cp -r ../shared/data/. gpu_payload/data/  # every test that reads real annotations runs there too
du -sh gpu_payload
