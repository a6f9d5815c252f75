#!/usr/bin/env bash
# The NeedleLink demo: installs what is missing, builds, and runs simulated
# pens through their demo treatments, showing what the pens do, until Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

deploy/install-deps.sh demo
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/demo -j"$(nproc)"

exec "$top/deploy/demo-run.sh" "$top/build/demo"
