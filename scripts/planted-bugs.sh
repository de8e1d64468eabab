#!/usr/bin/env bash
# Planted bugs: `scripts/planted-bugs.sh [PATCH...]` (default: every sim/planted/*.patch).
# Each patch starts with `# checker: NAME` and `# seeds: A..B` (and optionally `# args: ...`,
# more arguments to `scrapepool sim`), then a git diff that plants one bug. For each: a scratch git worktree at HEAD, `git apply`, a release build, then
# `scrapepool sim --seeds A..B`; the bug is found when the run fails and NAME is among the
# failed checkers. Prints one line per patch; exits non-zero if any bug was not found.
# Builds share one target directory (PLANTED_TARGET_DIR, default target/planted), and the
# scratch worktree always has the same path, so each build after the first recompiles only
# the workspace's crates.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"
target="${PLANTED_TARGET_DIR:-$repo/target/planted}"
mkdir -p "$target"
if [ "$#" -eq 0 ]; then set -- sim/planted/*.patch; fi
scratch="${TMPDIR:-/tmp}/scrapepool-planted"
wt="$scratch/wt"
cleanup() {
  [ -d "$wt" ] && git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true
  git -C "$repo" worktree prune
  rm -rf "$scratch"
}
cleanup
mkdir -p "$scratch"
trap cleanup EXIT
results=(); missed=0
for patch in "$@"; do
  patch="$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")"
  name="$(basename "$patch" .patch)"
  checker="$(sed -n 's/^# checker: *//p' "$patch" | head -1)"
  seeds="$(sed -n 's/^# seeds: *//p' "$patch" | head -1)"
  read -r -a args <<<"$(sed -n 's/^# args: *//p' "$patch" | head -1)"
  log="$scratch/$name.log"
  verdict=""
  if [ -z "$checker" ] || [ -z "$seeds" ]; then
    verdict="NOT FOUND  $name: no '# checker:' or '# seeds:' line"
  else
    git -C "$repo" worktree add --quiet --detach "$wt" HEAD
    if ! git -C "$wt" apply "$patch" 2>"$log"; then
      verdict="NOT FOUND  $name: the patch does not apply ($(head -1 "$log"))"
    elif ! (cd "$wt" && CARGO_TARGET_DIR="$target" cargo build --release --quiet -p scrapepool) >>"$log" 2>&1; then
      verdict="NOT FOUND  $name: the build failed (see the log above)"
      tail -20 "$log" >&2
    else
      status=0
      "$target/release/scrapepool" sim --seeds "$seeds" "${args[@]}" >>"$log" 2>&1 || status=$?
      failed_checkers="$(sed -n 's/^  failed checkers: //p' "$log" | tr ',' '\n' | tr -d ' ' | sort -u | paste -sd, -)"
      if [ "$status" -eq 0 ]; then
        verdict="NOT FOUND  $name: seeds $seeds all passed"
      elif printf '%s\n' "$failed_checkers" | tr ',' '\n' | grep -qx "$checker"; then
        verdict="found      $name: $checker failed (failed checkers: $failed_checkers)"
      else
        verdict="NOT FOUND  $name: the run failed, but not $checker (failed checkers: ${failed_checkers:-none})"
      fi
    fi
    git -C "$repo" worktree remove --force "$wt"
  fi
  case "$verdict" in NOT*) missed=$((missed + 1)) ;; esac
  echo "$verdict"
  results+=("$verdict")
done
echo "planted bugs: $(( ${#results[@]} - missed )) found, $missed not found"
[ "$missed" -eq 0 ]
