#!/usr/bin/env bash
# Fuzzes every target for SECONDS seconds each (default 60), one after the other:
#   fuzz/run.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz from crates.io if it is missing. cargo-fuzz passes the compiler flags of
# a nightly toolchain (-Z...); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Targets are built without a sanitizer (Otago forbids unsafe code), with debug assertions and
# overflow checks. A crash stops the run; the input is saved as fuzz/artifacts/<target>/crash-*.
# Add it to fuzz/corpus/<target>/ once fixed: `cargo test --manifest-path fuzz/Cargo.toml`
# replays the whole corpus without libFuzzer.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(manifest_request sfv_headers env_files export_metadata app_config api_bodies)
fi

export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The api_bodies target keeps a server's data folder under TMPDIR; a RAM disk keeps SQLite fast.
scratch=$(mktemp -d "$( [[ -d /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/otago-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
  printf '\n==> %s for %ss\n' "$target" "$seconds"
  # libFuzzer writes new inputs to the first folder only: keep the committed seeds apart.
  mkdir -p "$scratch/$target"
  TMPDIR="$scratch" cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
