#!/usr/bin/env bash
# Prints one sha256 over the names and contents of the source files under the given paths
# (relative to the current directory). The bootstrap's stamps use it to decide what to rebuild.
# In a git checkout only tracked files count, so build by-products (__pycache__, *.pyc left by
# tests or `ros2 launch`) never trigger a rebuild; outside one (an unpacked archive) every file
# counts except __pycache__ folders and *.pyc.
set -euo pipefail
list_sources() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached -- "$@"
  else
    find "$@" -name __pycache__ -prune -o -type f ! -name '*.pyc' -print0 2>/dev/null || true
  fi
}
# A tracked file deleted from the work tree drops out of the hash (and so changes it).
list_sources "$@" | LC_ALL=C sort -zu | while IFS= read -r -d '' file; do
  [ -f "$file" ] && printf '%s\0' "$file"
done | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1
