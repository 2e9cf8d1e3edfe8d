#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Turns one of doc/*.md into a man page, so the Markdown stays the only
text: the document's title line becomes the NAME section, its second-level
headings the man page's sections, and lowdown(1) writes the roff.

  md2man.py LOWDOWN INPUT.md OUTPUT NAME SECTION DESCRIPTION VERSION [SEE_ALSO...]

The date comes from $SOURCE_DATE_EPOCH when set (reproducible builds),
otherwise from INPUT's modification time."""

import datetime
import os
import re
import subprocess
import sys


def man_markdown(text, name, description, see_also):
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        sys.exit("md2man: the first line must be the document's '# title'")
    out = ["# NAME", "", "%s - %s" % (name, description), "", "# DESCRIPTION"]
    fence = False
    for line in lines[1:]:
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("##"):
            # One level up: "## Options" is the man page's OPTIONS section,
            # "### update" a subsection.
            level, title = re.match(r"(#+)\s+(.*)", line).groups()
            line = "#" * (len(level) - 1) + " " + (title.upper() if len(level) == 2 else title)
        out.append(line)
    if see_also:
        out += ["", "# SEE ALSO", "", ", ".join("**%s**(%s)" % tuple(s.rsplit(".", 1)) for s in see_also)]
    return "\n".join(out) + "\n"


def main():
    lowdown, src, dst, name, section, description, version = sys.argv[1:8]
    see_also = sys.argv[8:]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", os.stat(src).st_mtime))
    date = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d")
    roff = subprocess.run(
        [lowdown, "-s", "-Tman", "--nroff-nolinks",
         "-M", "title=" + name, "-M", "section=" + section,
         "-M", "date=" + date, "-M", "source=smpgw " + version],
        input=man_markdown(text, name, description, see_also),
        capture_output=True, text=True, check=True).stdout
    # lowdown puts a heading on the line after .SH/.SS; man-db's whatis
    # parser and lintian read ".SH NAME" either way, but other man readers
    # (mandoc's apropos) want it on the macro's own line.
    roff = re.sub(r"^\.(SH|SS)\n(.+)$", lambda m: '.%s "%s"' % (m.group(1), m.group(2).replace('"', '\\(dq')),
                  roff, flags=re.M)
    # A "|" in a table cell is written "\\|" in Markdown; lowdown keeps the
    # backslash inside code spans.
    roff = roff.replace("\\e|", "|")
    # Plain ASCII roff: groff reads its input as Latin-1 unless preconv(1)
    # runs first, which man(1) does but not every reader.
    roff = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in roff)
    with open(dst, "w", encoding="ascii") as f:
        f.write(roff)


if __name__ == "__main__":
    main()
