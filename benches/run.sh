#!/usr/bin/env bash
# The overhead suite in one command: builds what it measures, installs the real-tool workload
# it needs, and runs it. Arguments go to the suite (see `--help`), e.g.
#   benches/run.sh --quick                 # a short check that everything runs
#   benches/run.sh --publish               # the full run whose figures docs/benchmarks.md shows
#   benches/run.sh --baseline base.json    # exit 1 on a regression beyond the noise
# Set GREYWALL_BENCH_PEERS=1 to also install the peer sandboxes it compares against (srt and
# Codex, from npm, and socat, which srt needs). Timing: never run this in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq "$@" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$@"; }
  else
    echo "run.sh: $* missing (install it, or run as root with apt-get); its rows are skipped" >&2
  fi
}

# ripgrep: the `rg` workload.
command -v rg >/dev/null 2>&1 || install ripgrep
if [ "${GREYWALL_BENCH_PEERS:-0}" = 1 ]; then
  command -v socat >/dev/null 2>&1 || install socat
  command -v srt >/dev/null 2>&1 || npm install -g @anthropic-ai/sandbox-runtime
  command -v codex >/dev/null 2>&1 || npm install -g @openai/codex
fi

# The launcher and proxyd as shipped: static executables (`cargo dist`, .cargo/config.toml).
cargo dist
cargo build --release --locked -p greywall-benches
export GREYWALL="${GREYWALL:-$PWD/target/x86_64-unknown-linux-musl/release/greywall}"
exec ./target/release/overhead "$@"
