#!/usr/bin/env bash
# The format check of tools/check.sh: the rules of .editorconfig on every
# tracked text file, and .clang-format on every C line changed since
# .clang-format was added (git clang-format), so new code follows the
# style and older code follows it once touched, without one commit that
# re-wraps the whole history.  Prints what is wrong and exits 1.
#
#   tools/format-check.sh            check
#   tools/format-check.sh --fix      format the changed C lines in place
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

fix=false
[ "${1:-}" = --fix ] && fix=true
bad=0

# Files whose bytes are data, not text: seeds, fixtures, images.
text_files() {
  git ls-files -z | grep -z -v -E '^(tests/fuzz/corpus|tests/fixtures|tests/data)/|\.(bin|db|img|png)$'
}

# .editorconfig: LF, no trailing whitespace, a final newline; spaces, not
# tabs, in C, meson, Python and shell files.
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  grep -q -I . "$f" 2>/dev/null || continue   # binary or empty
  if grep -n -I -E '[[:space:]]$' "$f" | head -n3 | sed "s|^|$f:|;s|\$| (trailing whitespace)|" | grep .; then
    bad=1
  fi
  if [ -n "$(tail -c1 "$f")" ]; then
    echo "$f: no newline at the end of the file"
    bad=1
  fi
  case $f in
    *.c|*.h|*.py|*.sh|*meson.build|meson_options.txt)
      if grep -n -P '\t' "$f" | head -n3 | sed "s|^|$f:|;s|\$| (tab)|" | grep .; then
        bad=1
      fi;;
  esac
done < <(text_files)

# .clang-format on the C lines changed since it exists.
base=$(git log --diff-filter=A --format=%H -- .clang-format | tail -n1)
if [ -z "$base" ]; then
  echo "format-check: .clang-format is not committed yet; checking C layout skipped" >&2
elif ! git cat-file -e "$base^" 2>/dev/null; then
  echo "format-check: a shallow clone without the commit before $base; C layout not checked" >&2
else
  if $fix; then
    git clang-format --quiet --extensions c,h "$base^" -- . || true
  else
    out=$(git clang-format --diff --extensions c,h "$base^" -- . 2>&1 || true)
    case $out in
      ""|"no modified files to format"|*"clang-format did not modify any files"*) ;;
      *)
        printf '%s\n' "$out"
        echo "format-check: C lines above do not follow .clang-format (tools/format-check.sh --fix)"
        bad=1;;
    esac
  fi
fi

if [ "$bad" -ne 0 ]; then
  echo "format-check: failed"
  exit 1
fi
echo "format-check: ok"
