#!/usr/bin/env bash
# Runs the kernel enforcement tests (launcher/tests/{conformance,apply,exec,create_deny,network,decide_kernel,nspool,workloads}.rs)
# as an unprivileged user. `.ci/run` runs everything else as root, and root inside the
# sandbox's user namespace is a different test: it owns the host's files and keeps
# capabilities a normal user does not have.
#
# As root: builds the test binaries, creates the user (default `gwtest`, or
# $GREYWALL_TEST_USER) if it is missing, makes the binaries readable and the directories above
# them traversable, makes target/tmp (the tests' CARGO_TARGET_TMPDIR, where they put their
# scratch directories) writable by everyone with the sticky bit, like /tmp, and runs each test
# binary as that user. As a normal user: runs the binaries as itself.
#
# The binaries have absolute paths baked in (CARGO_BIN_EXE_greywall, CARGO_BIN_EXE_greywall-probe,
# CARGO_TARGET_TMPDIR), so they run where cargo built them.
#
# Exits non-zero when a binary fails. GREYWALL_REQUIRE_KERNEL defaults to 1: a test that would
# skip for lack of a kernel feature fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir=$(pwd)

# The test targets of the greywall package that exercise the kernel.
tests=(conformance apply exec create_deny network decide_kernel nspool workloads)
test_user=${GREYWALL_TEST_USER:-gwtest}
require=${GREYWALL_REQUIRE_KERNEL:-1}

# Build, and take the binaries' paths from cargo's own report
# ("Executable tests/conformance.rs (target/debug/deps/conformance-0123abcd)").
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
build_log=$(cargo test -p greywall --locked "${test_args[@]}" --no-run 2>&1) || {
  printf '%s\n' "$build_log" >&2
  exit 1
}
# network.rs runs the real greywall-proxyd, which `cargo test -p greywall` does not build (and
# the unprivileged user cannot run cargo): build it here, next to greywall.
cargo build -p greywall-proxyd --locked --bin greywall-proxyd --quiet
mapfile -t binaries < <(printf '%s\n' "$build_log" |
  sed -n 's/^ *Executable tests\/[a-z_]*\.rs (\(.*\))$/\1/p')
if [ ${#binaries[@]} -ne ${#tests[@]} ]; then
  printf '%s\n' "$build_log" >&2
  echo "unprivileged.sh: expected ${#tests[@]} test binaries in cargo's output, found ${#binaries[@]}" >&2
  exit 1
fi
for i in "${!binaries[@]}"; do
  case ${binaries[$i]} in
    /*) ;;
    *) binaries[$i]="$root_dir/${binaries[$i]}" ;;
  esac
done
deps_dir=$(dirname "${binaries[0]}")
target_dir=$(dirname "$(dirname "$deps_dir")")
profile_dir=$(dirname "$deps_dir")
pkg_dir="$root_dir/launcher"

run_as=()
if [ "$(id -u)" -eq 0 ]; then
  if ! id -u "$test_user" >/dev/null 2>&1; then
    echo "creating user $test_user"
    useradd -m -s /bin/sh "$test_user"
  fi
  user_home=$(getent passwd "$test_user" | cut -d: -f6)

  # Readable binaries; every directory above them (and above the package) traversable.
  chmod a+rx "${binaries[@]}" "$profile_dir/greywall" "$profile_dir/greywall-probe" \
    "$profile_dir/greywall-proxyd"
  for d in "$deps_dir" "$pkg_dir"; do
    while [ "$d" != / ]; do
      if [ "$(stat -c %A "$d" | cut -c10)" != x ] && [ "$(stat -c %A "$d" | cut -c10)" != t ]; then
        echo "making $d traversable for $test_user"
        chmod o+x "$d"
      fi
      d=$(dirname "$d")
    done
  done
  mkdir -p "$target_dir/tmp"
  chmod 1777 "$target_dir/tmp"
  run_as=(su -s /bin/sh "$test_user" -c)
else
  user_home=$HOME
fi

failed=()
for bin in "${binaries[@]}"; do
  echo "--- $(basename "$bin") as $(if [ ${#run_as[@]} -gt 0 ]; then echo "$test_user"; else id -un; fi)"
  cmd="cd $(printf %q "$pkg_dir") && HOME=$(printf %q "$user_home") \
GREYWALL_REQUIRE_KERNEL=$(printf %q "$require") $(printf %q "$bin")"
  if [ ${#run_as[@]} -gt 0 ]; then
    "${run_as[@]}" "$cmd" || failed+=("$(basename "$bin")")
  else
    sh -c "$cmd" || failed+=("$(basename "$bin")")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "unprivileged.sh: failed as an unprivileged user: ${failed[*]}" >&2
  exit 1
fi
echo "unprivileged.sh: all enforcement tests passed as an unprivileged user"
