#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while each (not part of CI).
#
#   scripts/fuzz.sh [seconds-per-target] [target…]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Runs at the lowest
# CPU priority on one core. Each target starts from the committed seeds in fuzz/seeds/<target>
# and keeps what it learns in fuzz/corpus/<target> (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/; turn it into a unit test next to the code it broke.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

nice -n 19 cargo +nightly fuzz build -O
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${seconds}s"
    start=$(date +%s)
    if ! nice -n 19 cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=5 -max_len=65536 \
        -print_final_stats=1 2>"corpus/$t.log"; then
        echo "   $t: FAILED, see fuzz/corpus/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "corpus/$t.log" | grep -o '[0-9]*$' || echo "?")
    echo "   $t: $(( $(date +%s) - start ))s, ${runs} runs, corpus $(ls "corpus/$t" | wc -l) inputs"
done
exit "$status"
