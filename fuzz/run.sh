#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for SECONDS (default 20), from the committed
# seeds (fuzz/seeds/TARGET) and the crash regressions (fuzz/regressions/TARGET), growing a
# working corpus in fuzz/corpus/TARGET (not committed). Prints one line per target:
# executions, coverage (cov, ft) and crashes; exits 1 if any target crashed, timed out or ran
# out of memory (the input is left in fuzz/artifacts/TARGET).
#
#   fuzz/run.sh            # every target, 20 s each (CI's smoke run)
#   fuzz/run.sh 600        # every target, 10 minutes each
#   fuzz/run.sh 600 claims # one target
#
# Stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags. No
# sanitizer (-s none): the code under test forbids `unsafe`, and ASan would rebuild every
# dependency for little; libFuzzer's own -timeout and -rss_limit_mb bound time and memory.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bearer jose_header claims unverified_iss jwks discovery forwarded config path policy dpop_proof)
fi
target_dir="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}/fuzz"
export RUSTC_BOOTSTRAP=1
triple="$(rustc -vV | sed -n 's/^host: //p')"
# FUZZ_NO_BUILD=1 runs the binaries as last built (a long run queued behind another).
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
    cargo fuzz build -s none --target-dir "$target_dir" >/dev/null 2>"$target_dir.build.log" || {
        cat "$target_dir.build.log"
        exit 1
    }
fi
mkdir -p logs
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
    log="logs/$target.log"
    status=0
    # Each input at most 10 s, at most 2 GiB resident; no fork, one core.
    # The binary cargo-fuzz built, run directly: an edit made while a long run goes on
    # cannot change what later targets run.
    "$target_dir/$triple/release/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "corpus/$target" "seeds/$target" "regressions/$target" \
        >"$log" 2>&1 || status=$?
    runs=$(grep -a '^stat::number_of_executed_units:' "$log" | tail -1 | tr -dc '0-9')
    last=$(grep -aE '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    crashes=$(find "artifacts/$target" -type f | wc -l)
    echo "fuzz $target: ${seconds}s, ${runs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, artifacts $crashes, exit $status"
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        grep -aE -A1 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | cut -c1-300 | head -8 || true
    fi
done
exit "$failed"
