#!/usr/bin/env bash
# Installs what is missing, builds NeedleLink three times (plain, with
# ASan+UBSan, with TSan) and runs every test through ctest. Exits non-zero when any
# build or test fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

deploy/install-deps.sh test

jobs=$(nproc)
# run_tier NAME "CTEST ARGS" CMAKE ARGS...
run_tier() {
	local name=$1 ctest_args=$2
	shift 2
	echo "=== $name: configure and build"
	cmake -S . -B "build/$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "build/$name" -j"$jobs"
	echo "=== $name: ctest $ctest_args"
	# shellcheck disable=SC2086
	(cd "build/$name" && ctest --output-on-failure -j"$jobs" --timeout 600 $ctest_args)
}

run_tier plain ""
# The sanitizer tier runs every test but the VM tier: the guest runs no
# sanitized code of ours yet, so a second boot would test nothing new.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_tier sanitize "-LE bluez-vm" -DNL_SANITIZE=ON -DCMAKE_C_COMPILER=clang
# ThreadSanitizer where threads meet: Paho's callbacks and the loop (queue,
# mqtt), the journal's syncer thread; the daemon under it end to end. The
# fuzz replays and the VM run no threads of ours.
TSAN_OPTIONS=halt_on_error=1 \
	run_tier tsan "-LE bluez-vm|fuzz-replay" -DNL_TSAN=ON -DCMAKE_C_COMPILER=clang
echo "=== all tiers passed"
