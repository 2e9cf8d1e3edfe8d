#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The generated man pages: each has a NAME line that man-db indexes
# (lexgrog, what `apropos`/`whatis` and lintian read), and groff renders it
# with no error and no warning but the line-filling ones that narrow
# tables cause, wide tables included (lintian ignores those too).
set -euo pipefail
status=0
for page in "$@"; do
  if ! whatis=$("${LEXGROG:-lexgrog}" "$page"); then
    echo "not ok: $page: no NAME section lexgrog can read"; status=1; continue
  fi
  msgs=$(LC_ALL=C.UTF-8 "${GROFF:-groff}" -man -Tutf8 -ww -z -t "$page" 2>&1 |
         grep -v -E "cannot adjust line|can't break line|table (wider than line width|squeezed horizontally)|column separation set to zero|^warning: file '.*', around line [0-9]+:$|^  table" || true)
  if [ -n "$msgs" ]; then
    echo "not ok: $page: groff says:"; echo "$msgs"; status=1
  else
    echo "ok: $whatis"
  fi
done
exit $status
