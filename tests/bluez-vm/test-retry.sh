#!/usr/bin/env bash
# run-vm.sh -k checks itself: a guest test that puts the signature of the
# known hci_chan_del oops in the guest console and fails must make the run
# go again twice, say so each time, keep each failed run's results, and
# still fail after the third.
# Usage: test-retry.sh BUILD_DIR RESULTS_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR RESULTS_DIR" >&2; exit 2; }
results=$2
rm -rf "$results" "$results.oops1" "$results.oops2"
out=$(bash "$here/run-vm.sh" -k -t 200 -T 60 "$1" "$results" \
	"oops=echo '<2>Oops: 0000 [#1] PREEMPT SMP (test-retry) hci_chan_del+0x18/0x90 [bluetooth]' >/dev/kmsg; sleep 1; exit 1" 2>&1)
rc=$?
echo "$out"
fail() { echo "test-retry: FAIL: $*" >&2; exit 1; }
[ $rc -ne 0 ] || fail "run-vm.sh -k exited 0 for a failing guest test"
[ "$(grep -c 'bluez-vm: RETRY [12] of 2:' <<<"$out")" = 2 ] || fail "not exactly two RETRY lines"
for n in 1 2; do
	[ -f "$results.oops$n/console.log" ] || fail "failed run $n's console was not kept"
	grep -q 'test-retry' "$results.oops$n/console.log" || fail "run $n did not run the test"
done
grep -q 'test-retry' "$results/console.log" || fail "the third run did not run the test"
echo "test-retry: ok (two retries, then the failure stood)"
