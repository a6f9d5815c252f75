#!/usr/bin/env bash
# run-vm.sh -k checks itself: a guest test that puts the signature of the
# known hci_chan_del oops in the guest console and fails must make the run
# go once more, say so, keep the first run's results, and still fail.
# Usage: test-retry.sh BUILD_DIR RESULTS_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR RESULTS_DIR" >&2; exit 2; }
results=$2
rm -rf "$results" "$results.oops"
out=$(bash "$here/run-vm.sh" -k -t 200 -T 60 "$1" "$results" \
	"oops=echo '<2>Oops: 0000 [#1] PREEMPT SMP (test-retry) hci_chan_del+0x18/0x90 [bluetooth]' >/dev/kmsg; sleep 1; exit 1" 2>&1)
rc=$?
echo "$out"
fail() { echo "test-retry: FAIL: $*" >&2; exit 1; }
[ $rc -ne 0 ] || fail "run-vm.sh -k exited 0 for a failing guest test"
[ "$(grep -c 'bluez-vm: RETRY:' <<<"$out")" = 1 ] || fail "not exactly one RETRY line"
[ -f "$results.oops/console.log" ] || fail "the first run's console was not kept"
grep -q 'test-retry' "$results/console.log" || fail "the second run did not run the test"
echo "test-retry: ok (one retry, then the failure stood)"
