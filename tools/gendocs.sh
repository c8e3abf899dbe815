#!/usr/bin/env bash
# Generates docs/api.md, the API reference, and the man pages in man/
# (section 3, one page per entry, and tulip(7); installed by make install)
# from the public headers: include/tulip.h, then include/tulip/*.h in the
# order tulip.h includes them (any others after, by name). Both are
# committed, so a build needs no Python; CI runs --check. It also copies
# the code blocks of docs/guide.md from the programs in tests/guide/ that
# the build compiles and runs (see "the guide's snippets" below).
#
#   tools/gendocs.sh           rewrite docs/api.md, man/ and the guide's code
#   tools/gendocs.sh --check   exit 1 (with a diff) if any of them is stale
#   tools/gendocs.sh --stdout  print the reference instead of writing it
#
# How the headers are read:
# - a banner comment  /* ====...\n * Title\n * ====... */  starts a section
#   ("## Title"); a topic header without a banner gets one named after the
#   file;
# - the comment block at the top of a file, before its first banner, is
#   the section's (or page's) introduction;
# - every declaration (TL_API function, typedef, enum, struct, #define)
#   together with the comment block right above it becomes an entry; a
#   comment followed by several declarations with no blank line between
#   them documents all of them (tl_spawn and tl_spawn_ex);
# - names starting with tl__/TL__ are implementation details: an entry
#   made only of them is left out, and a comment that says "not API" hides
#   everything after it up to the next banner;
# - function-like macros whose body is implementation (tl__ calls,
#   __builtin_*) are shown by their signature only.
# Needs python3 (scripts/install-deps.sh installs it).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-write}
out=$root/docs/api.md
guide=$root/docs/guide.md

gen() {
    python3 - "$root" "$@" <<'PY'
import os, re, sys

root = sys.argv[1]
inc = os.path.join(root, "include")
main_h = os.path.join(inc, "tulip.h")

def included_by_main():
    text = open(main_h).read()
    return set(re.findall(r'#\s*include\s+"(tulip/[^"]+\.h)"', text))

def include_line(rel):
    """What a program includes to get the declarations of `rel`: <tulip.h>,
    or an integration's own header (tulip/pg.h: its own library)."""
    if rel == "tulip.h" or rel in included_by_main():
        return "<tulip.h>"
    return "<%s>" % rel

def topic_order():
    text = open(main_h).read()
    named = re.findall(r'#\s*include\s+"(tulip/[^"]+\.h)"', text)
    rest = sorted("tulip/" + f for f in os.listdir(os.path.join(inc, "tulip"))
                  if f.endswith(".h") and "tulip/" + f not in named)
    return ["tulip.h"] + [n for n in named
                          if os.path.exists(os.path.join(inc, n))] + rest

BANNER = re.compile(r"^/\*\s*={5,}")
NOISE = re.compile(r'^\s*(#\s*(if|ifdef|ifndef|endif|else|elif|include|undef|pragma)\b'
                   r'|extern\s+"C"|}\s*$)')

def strip_comment(lines):
    """Comment lines -> text lines, without the /* * */ decoration."""
    out = []
    for i, l in enumerate(lines):
        l = l.rstrip()
        if i == 0:
            l = re.sub(r"^\s*/\*+ ?", "", l)
        else:
            l = re.sub(r"^\s*\* ?", "", l, count=1) if re.match(r"^\s*\*(?!/)", l) else l.strip()
        l = re.sub(r"\s*\*/\s*$", "", l)
        out.append(l)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out

def code_only(line, state):
    """The part of a line outside comments and strings (for brace counting);
    state['c'] carries 'inside a block comment' across lines."""
    res, i = "", 0
    while i < len(line):
        if state["c"]:
            j = line.find("*/", i)
            if j < 0:
                return res
            state["c"] = False
            i = j + 2
        elif line.startswith("/*", i):
            state["c"] = True
            i += 2
        elif line.startswith("//", i):
            return res
        elif line[i] in "\"'":
            q, i = line[i], i + 1
            while i < len(line) and line[i] != q:
                i += 2 if line[i] == "\\" else 1
            i += 1
        else:
            res += line[i]
            i += 1
    return res

def names_of(decl):
    first = decl[0].strip()
    m = re.match(r"#\s*define\s+(\w+)", first)
    if m:
        return [m.group(1)]
    joined = " ".join(l.strip() for l in decl)
    joined = re.sub(r"/\*.*?\*/", "", joined)
    if joined.startswith("typedef"):
        # a function pointer type (not a struct with function-pointer fields)
        m = "{" not in joined and re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", joined)
        if m:
            return [m.group(1)]
        m = re.search(r"(\w+)\s*;\s*$", joined)
        return [m.group(1)] if m else []
    m = re.match(r"(enum|struct)\s+(\w+)\s*\{", joined)
    if m:
        return [m.group(1) + " " + m.group(2)]
    if joined.startswith("enum"):
        body = " ".join(re.sub(r"/\*.*?\*/|//.*", "", l) for l in decl
                        if not l.strip().startswith("#"))
        body = body[body.find("{") + 1:body.rfind("}")]
        return re.findall(r"\b([A-Za-z_]\w*)\s*(?:=[^,]*)?(?:,|$)", body.strip())
    m = re.search(r"(\w+)\s*\([^()]*(\([^()]*\)[^()]*)*\)\s*(TL_\w+(\([^)]*\))?\s*)*;", joined)
    return [m.group(1)] if m else []

def render_decl(decl):
    first = decl[0]
    if re.match(r"\s*#\s*define\s+\w+\(", first):
        body = " ".join(decl)
        if re.search(r"\btl__\w+|__builtin_|\bTL__WITH\b|\bTL__CAT\b", body):
            sig = re.match(r"\s*(#\s*define\s+\w+\([^)]*\))", first).group(1)
            return [sig]
    lines = []
    for l in decl:
        l = re.sub(r"^TL_API\s+", "", l)
        lines.append(l.rstrip())
    return lines

def parse(path, rel):
    """-> (intro lines, [section]) ; section = [title, intro, entries]"""
    lines = open(path).read().split("\n")
    sections, intro = [], None
    cur = None
    pending = None        # comment lines waiting for a declaration
    entry = None          # [comment, [decl lines...], names]
    hidden = False
    has_banner = any(BANNER.match(l.strip()) for l in lines)
    i = 0

    def close_entry():
        nonlocal entry
        if entry and cur is not None and not hidden:
            public = [n for n in entry[2]
                      if not re.match(r"(enum |struct )?(tl__|TL__)", n)]
            if public:
                cur[2].append((entry[0], entry[1], public))
        entry = None

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if BANNER.match(s):
            close_entry()
            j = i
            block = []
            while True:
                block.append(lines[j])
                if "*/" in lines[j]:
                    break
                j += 1
            title = [re.sub(r"^\s*\*\s?", "", b).strip() for b in block[1:-1]]
            title = [t for t in title if t and not t.startswith("=")]
            cur = [title[0] if title else rel, [], []]
            sections.append(cur)
            hidden, pending = False, None
            i = j + 1
            continue
        if s.startswith("/*"):
            block = [line]
            j = i
            while "*/" not in lines[j][lines[j].find("/*") + 2 if j == i else 0:]:
                j += 1
                block.append(lines[j])
            text = strip_comment(block)
            close_entry()
            if intro is None and cur is None and not sections:
                title, rest = split_banner(text)
                if title:
                    cur = [title, [], []]
                    sections.append(cur)
                    has_banner = True
                intro = rest
            elif any("not API" in t for t in text):
                hidden = True
            elif cur is not None and not cur[2] and pending is None and \
                    i > 0 and not lines[i - 1].strip() and \
                    (j + 1 >= len(lines) or not lines[j + 1].strip()):
                cur[1].append(text)          # a free-standing section note
            else:
                pending = text
            i = j + 1
            continue
        if not s:
            close_entry()
            pending = None
            i += 1
            continue
        if NOISE.match(line) or re.match(r"#\s*define\s+\w+_H\s*$", s):
            close_entry()
            pending = None
            i += 1
            continue
        # A declaration: collect until it is complete.
        decl, depth, st = [], 0, {"c": False}
        j = i
        if s.startswith("#"):                  # a macro: up to its last \\
            while lines[j].rstrip().endswith("\\") and j + 1 < len(lines):
                decl.append(lines[j])
                j += 1
            decl.append(lines[j])
        while not s.startswith("#") and j < len(lines):
            l = lines[j]
            decl.append(l)
            code = code_only(l, st)
            depth += code.count("{") + code.count("(") - code.count("}") - code.count(")")
            if depth <= 0 and not st["c"] and code.rstrip().endswith(";"):
                break
            j += 1
        if cur is None and has_banner:
            i = j + 1                          # before the first banner:
            continue                           # macros of the header itself
        if cur is None:
            cur = [rel, [], []]
            sections.append(cur)
        if entry is None and not pending and cur[2] and not hidden and \
                not names_of(decl):
            # An undocumented declaration after a blank line belongs with
            # the documented one above it (the enum that TL_ERRORS fills).
            c, d, n = cur[2].pop()
            entry = [c, d + [""], n, 0]
        if entry is None:
            entry = [pending or [], [], [], 0]
            pending = None
        elif entry[1] and (len(decl) > 1 or entry[3] > 1):
            entry[1].append("")
        entry[1].extend(render_decl(decl))
        entry[2].extend(names_of(decl))
        entry[3] = len(decl)
        i = j + 1
    close_entry()
    return intro or [], sections

def md_text(lines):
    """Comment prose -> markdown: runs of lines indented by 2+ spaces
    (examples, tables) become fenced blocks; the rest stays prose."""
    out, block = [], []
    def flush():
        if block:
            while block and not block[-1].strip():
                block.pop()
            ind = min(len(b) - len(b.lstrip()) for b in block if b.strip())
            lang = "c" if any(re.search(r"[;{}]\s*$", b) for b in block) else "text"
            if out and out[-1].strip():
                out.append("")
            out.append("```" + lang)
            out.extend(b[ind:] for b in block)
            out.append("```")
            out.append("")
            block.clear()
    for l in lines:
        if l.startswith("  ") and l.strip():
            block.append(l)
        elif not l.strip() and block:
            block.append(l)
        else:
            flush()
            out.append("\\" + l if l.startswith("*") else l)
    flush()
    while out and not out[-1].strip():
        out.pop()
    return out

def split_banner(text):
    """A top comment with an embedded ==== banner: -> (title, text after)."""
    for k in range(len(text) - 2):
        if re.match(r"^={5,}", text[k].strip()) and \
                re.match(r"^={5,}", text[k + 2].strip()):
            rest = text[k + 3:]
            while rest and not rest[0].strip():
                rest.pop(0)
            return text[k + 1].strip(), rest
    return None, text

def anchor(title):
    a = re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")
    return a

def main():
    files = topic_order()
    parsed = []
    for rel in files:
        intro, sections = parse(os.path.join(inc, rel), rel)
        parsed.append((rel, intro, sections))
    out = []
    out.append("# tulip API reference")
    out.append("")
    out.append("<!-- Generated by tools/gendocs.sh from include/tulip.h and "
               "include/tulip/*.h; do not edit. `tools/gendocs.sh --check` "
               "fails when this file is stale. -->")
    out.append("")
    out.append("One header, `#include <tulip.h>`. Functions return `int`: "
               ">= 0 success, < 0 a negative errno-style code or a `TL_*` code. "
               "Calls marked SUSPENDS may switch to other tasks and are "
               "cancellation points.")
    out.append("")
    for rel, intro, sections in parsed:
        for title, _, entries in sections:
            if entries:
                out.append("- [%s](#%s)" % (title, anchor(title)))
    out.append("")
    for rel, intro, sections in parsed:
        if rel == "tulip.h" and intro:
            out.append("## Overview")
            out.append("")
            out.append("From the top of `include/tulip.h`:")
            out.append("")
            out.extend(md_text(intro))
            out.append("")
        for title, notes, entries in sections:
            if not entries:
                continue
            out.append("## " + title)
            out.append("")
            if rel != "tulip.h":
                if include_line(rel) == "<tulip.h>":
                    out.append("*Declared in `include/%s` (included by `<tulip.h>`).*" % rel)
                elif intro is None:
                    out.append("*Declared in `include/%s` (`#include %s`).*"
                               % (rel, include_line(rel)))
                else:
                    out.append("*Declared in `include/%s`: an integration with "
                               "its own library, not part of `<tulip.h>`: "
                               "`#include %s` (it says how to link).*"
                               % (rel, include_line(rel)))
                out.append("")
                if intro:
                    out.extend(md_text(intro))
                    out.append("")
                    intro = None
            for n in notes:
                out.extend(md_text(n))
                out.append("")
            for comment, decl, names in entries:
                out.append("### " + ", ".join("`%s`" % n for n in names))
                out.append("")
                out.append("```c")
                out.extend(decl)
                out.append("```")
                out.append("")
                if comment:
                    out.extend(md_text(comment))
                    out.append("")
    text = "\n".join(out).rstrip("\n") + "\n"
    sys.stdout.write(re.sub(r"\n{3,}", "\n\n", text))

# ---- man pages --------------------------------------------------------
# One page per entry in man3 (named after its first name; every other name
# of the entry is a one-line ".so" page pointing at it, as liburing does),
# and tulip(7): the overview, every section's introduction and the list of
# pages. Deterministic (no date), so committed pages can be checked.

def roff_escape(line):
    line = line.replace("\\", "\\e").replace("-", "\\-")
    # Non-ASCII as groff's \[uXXXX], so the pages need no input encoding.
    line = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in line)
    if line.startswith(".") or line.startswith("'"):
        line = "\\&" + line
    return line

def roff_text(lines):
    """Comment prose -> roff: paragraphs filled, runs of lines indented by
    2+ spaces (examples, tables) kept as they are, indented."""
    out, block = [], []
    def flush():
        if block:
            while block and not block[-1].strip():
                block.pop()
            ind = min(len(b) - len(b.lstrip()) for b in block if b.strip())
            out.extend([".PP", ".RS 4", ".nf"])
            out.extend(roff_escape(b[ind:].rstrip()) if b.strip() else ""
                       for b in block)
            out.extend([".fi", ".RE"])
            block.clear()
    para = False
    for l in lines:
        if l.startswith("  ") and l.strip():
            block.append(l)
            para = False
        elif not l.strip():
            if block:
                block.append(l)
            para = False
        else:
            flush()
            if not para:
                out.append(".PP")
                para = True
            out.append(roff_escape(l.strip()))
    flush()
    return out

def page_name(n):
    return re.sub(r"^(enum|struct) ", "", n)

def summary(comment, fallback):
    """The NAME line's description: the comment's first sentence."""
    text = " ".join(l.strip() for l in comment if l.strip()) if comment else ""
    m = re.match(r"(.+?[.])(\s|$)", text)
    s = (m.group(1) if m else text).rstrip(".")
    if not s:
        return fallback
    if len(s) > 90:
        s = s[:90].rsplit(" ", 1)[0] + " ..."
    return s

def version():
    text = open(os.path.join(inc, "tulip", "version.h")).read()
    return ".".join(re.search(r"#define\s+TL_VERSION_%s\s+(\d+)" % p, text).group(1)
                    for p in ("MAJOR", "MINOR", "PATCH"))

def man_main(outdir):
    ver = version()
    files = topic_order()
    parsed = [(rel,) + parse(os.path.join(inc, rel), rel) for rel in files]
    head = ['.\\" Generated by tools/gendocs.sh from the comments in '
            'include/tulip.h and include/tulip/*.h; do not edit.']
    def th(name, sec):
        return '.TH %s %d "" "tulip %s" "tulip Manual"' % (name.upper(), sec, ver)
    pages = {}        # file name -> lines
    listing = []      # (section title, intro, [page names])
    for rel, intro, sections in parsed:
        for title, notes, entries in sections:
            if not entries:
                continue
            names = [page_name(n) for _, _, ns in entries for n in ns]
            listing.append((title, intro if rel != "tulip.h" else [], notes,
                            [page_name(ns[0]) for _, _, ns in entries]))
            intro = [] if rel != "tulip.h" else intro
            for comment, decl, ns in entries:
                first = page_name(ns[0])
                if first + ".3" in pages:
                    continue
                p = head + [th(first, 3), ".SH NAME",
                            "%s \\- %s" % (", ".join(roff_escape(page_name(n)) for n in ns),
                                           roff_escape(summary(comment, title)))]
                p += [".SH SYNOPSIS", ".nf", ".B #include %s" % include_line(rel), ".PP"]
                p += [roff_escape(l) for l in decl]
                p += [".fi", ".SH DESCRIPTION"]
                p += roff_text(comment) if comment else \
                    [".PP", "See the section \"%s\" in" % roff_escape(title), ".BR tulip (7)."]
                see = [n for n in names if n not in (page_name(x) for x in ns)]
                seen = []
                for n in see:
                    if n not in seen:
                        seen.append(n)
                p += [".SH SEE ALSO", ".BR tulip (7)" + ("," if seen else "")]
                p += [".BR %s (3)%s" % (roff_escape(n), "," if i + 1 < len(seen) else "")
                      for i, n in enumerate(seen)]
                pages[first + ".3"] = p
                for n in ns[1:]:
                    n = page_name(n)
                    if n + ".3" not in pages:
                        pages[n + ".3"] = [".so man3/%s.3" % first]
    # tulip(7)
    intro = parsed[0][1]
    p = head + [th("tulip", 7), ".SH NAME", "tulip \\- asyncio for C",
                ".SH SYNOPSIS", ".nf", ".B #include <tulip.h>", ".PP",
                "cc app.c $(pkg\\-config \\-\\-cflags \\-\\-libs tulip)", ".fi",
                ".SH DESCRIPTION"]
    p += roff_text(intro)
    p += [".SH SECTIONS", ".PP",
          "Each section of the headers, its introduction and its pages."]
    for title, sintro, notes, ns in listing:
        p += [".SS " + roff_escape(title)]
        p += roff_text(sintro)
        for n in notes:
            p += roff_text(n)
        p += [".PP"]
        p += [".BR %s (3)%s" % (roff_escape(n), "," if i + 1 < len(ns) else "")
              for i, n in enumerate(ns)]
    p += [".SH SEE ALSO", "The API reference docs/api.md and the guide "
          "docs/guide.md in the source tree; the README."]
    pages["tulip.7"] = p
    for name, lines in pages.items():
        sec = name.rsplit(".", 1)[1]
        d = os.path.join(outdir, "man" + sec)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write("\n".join(lines) + "\n")

# ---- the guide's snippets -----------------------------------------------
# docs/guide.md shows code from files the build compiles and runs
# (tests/guide/*.c): a line
#     <!-- snippet: tests/guide/retry.c retry -->
# before a fenced block makes the block the region of that file between
# "/* guide: retry */" and "/* guide: end */" (no region name: the whole
# file). Every ```c block must have one, so no C in the guide goes
# untested.

def region(rel, name, errors, where):
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        errors.append("%s: no such file %s" % (where, rel))
        return []
    lines = open(path).read().rstrip("\n").split("\n")
    if name is None:
        return lines
    start = "/* guide: %s */" % name
    try:
        b = [l.strip() for l in lines].index(start)
    except ValueError:
        errors.append("%s: no region '%s' in %s" % (where, name, rel))
        return []
    body = []
    for l in lines[b + 1:]:
        if l.strip() == "/* guide: end */":
            break
        body.append(l)
    else:
        errors.append("%s: region '%s' of %s has no '/* guide: end */'" % (where, name, rel))
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    ind = min((len(l) - len(l.lstrip()) for l in body if l.strip()), default=0)
    return [l[ind:] for l in body]

def guide_main():
    path = os.path.join(root, "docs", "guide.md")
    lines = open(path).read().rstrip("\n").split("\n")
    out, errors, i, marked = [], [], 0, False
    while i < len(lines):
        l = lines[i]
        m = re.match(r"<!--\s*snippet:\s*(\S+)(?:\s+(\S+))?\s*-->\s*$", l)
        if m:
            out.append(l)
            i += 1
            if i >= len(lines) or not lines[i].startswith("```"):
                errors.append("docs/guide.md:%d: a snippet marker must be "
                              "followed by a ``` block" % i)
                continue
            out.append(lines[i])
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            i += 1
            out.extend(region(m.group(1), m.group(2), errors,
                              "docs/guide.md:%d" % (i + 1)))
            out.append("```")
            continue
        if l.strip() in ("```c", "```C"):
            errors.append("docs/guide.md:%d: a C block without a snippet "
                          "marker (put the code in tests/guide/)" % (i + 1))
        out.append(l)
        i += 1
    if errors:
        sys.stderr.write("\n".join("gendocs: " + e for e in errors) + "\n")
        sys.exit(1)
    sys.stdout.write("\n".join(out) + "\n")

if len(sys.argv) > 3 and sys.argv[2] == "man":
    man_main(sys.argv[3])
elif len(sys.argv) > 2 and sys.argv[2] == "guide":
    guide_main()
else:
    main()
PY
}

# The man pages: gen man DIR writes DIR/man3/*.3 and DIR/man7/tulip.7.
genman() { # dir
    rm -rf "$1"
    mkdir -p "$1"
    gen man "$1"
}

case $mode in
write)
    mkdir -p "$root/docs"
    gen >"$out.tmp" && mv "$out.tmp" "$out"
    echo "gendocs: wrote docs/api.md"
    genman "$root/man.tmp"
    rm -rf "$root/man"
    mv "$root/man.tmp" "$root/man"
    echo "gendocs: wrote man/ ($(find "$root/man" -type f | wc -l) pages)"
    gen guide >"$guide.tmp" && mv "$guide.tmp" "$guide" ||
        { rm -f "$guide.tmp"; exit 1; }
    echo "gendocs: wrote the snippets of docs/guide.md"
    ;;
--stdout)
    gen
    ;;
--check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    gen >"$tmp/api.md"
    rc=0
    if ! diff -u "$out" "$tmp/api.md" >/dev/null 2>&1; then
        diff -u "$out" "$tmp/api.md" | head -n 40
        echo "gendocs: docs/api.md is stale; run tools/gendocs.sh and commit it" >&2
        rc=1
    fi
    genman "$tmp/man"
    if ! diff -r "$root/man" "$tmp/man" >/dev/null 2>&1; then
        diff -ru "$root/man" "$tmp/man" | head -n 40
        echo "gendocs: man/ is stale; run tools/gendocs.sh and commit it" >&2
        rc=1
    fi
    if ! gen guide >"$tmp/guide.md"; then
        rc=1
    elif ! diff -u "$guide" "$tmp/guide.md" >/dev/null 2>&1; then
        diff -u "$guide" "$tmp/guide.md" | head -n 40
        echo "gendocs: docs/guide.md's snippets are stale against tests/guide/; run tools/gendocs.sh and commit it" >&2
        rc=1
    fi
    [ $rc -eq 0 ] && echo "gendocs: docs/api.md, man/ and docs/guide.md are up to date"
    exit $rc
    ;;
*)
    echo "usage: tools/gendocs.sh [--check|--stdout]" >&2
    exit 2
    ;;
esac
