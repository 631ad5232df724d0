# man/mkman.awk: the API's man pages from include/cfutures.h and man/*.desc.
# Run by man/mkman.sh, which documents the .desc format; POSIX awk (mawk
# runs it: no gensub, no arrays of arrays, no length() of an array).
#
# Input: the header first, then every page's .desc file.  Variables: outdir
# (where the pages go), version, date.
#
# The header is read as a sequence of blocks.  A comment that ends on the
# line just before code is that code's comment; the code up to the next
# blank line or comment is one group (e.g. the three predicates under one
# comment), made of declarations (a prototype, a typedef, a #define), each
# known by the name it declares.  A comment followed by anything else (a
# blank line, another comment) is free, found by the banner section it
# sits in.  Nothing else about the header's layout is assumed, so fields,
# comments and functions can change without touching this file.

# ---- small string helpers ----------------------------------------------------

# s with every occurrence of the literal string a replaced by b (sub() and
# gsub() treat backslashes and & in the replacement differently by awk).
function repl(s, a, b,    out, i) {
  out = ""
  while ((i = index(s, a)) > 0) {
    out = out substr(s, 1, i - 1) b
    s = substr(s, i + length(a))
  }
  return out s
}

function trim(s) {
  sub(/^[ \t]+/, "", s)
  sub(/[ \t]+$/, "", s)
  return s
}

function spaces(n,    s) {
  s = ""
  while (n-- > 0)
    s = s " "
  return s
}

# Every /* ... */ of t removed (t may span lines); an unclosed one is cut.
function strip_comments(t,    out, i, j) {
  out = ""
  while ((i = index(t, "/*")) > 0) {
    out = out substr(t, 1, i - 1)
    t = substr(t, i + 2)
    j = index(t, "*/")
    if (j == 0)
      return out
    t = substr(t, j + 2)
  }
  return out t
}

# t on one line, runs of white space as one space.
function oneline(t) {
  gsub(/[ \t\n]+/, " ", t)
  return trim(t)
}

function die(msg) {
  print "mkman: " msg > "/dev/stderr"
  failed = 1
  exit 1
}

# ---- troff escapes -----------------------------------------------------------

# Code (the SYNOPSIS): every character as typed, so that it can be copied.
function esc_code(s) {
  s = repl(s, "\\", "\\e")
  s = repl(s, "-", "\\-")
  s = repl(s, "'", "\\(aq")
  s = repl(s, "`", "\\(ga")
  if (s ~ /^\./)
    s = "\\&" s
  return s
}

# Hyphens of running text: a hyphen between two letters or digits is a
# hyphen (non-zero, close-on-exec); any other is a minus (-1, ->, a - b).
function hyphens(s, code,    out, i, c) {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "-" && (code || substr(s, i - 1, 1) !~ /[A-Za-z0-9]/ ||
                     substr(s, i + 1, 1) !~ /[A-Za-z0-9]/))
      c = "\\-"
    out = out c
  }
  return out
}

# Outside `code`: cf_name() in bold, as man pages write functions.
function fnrefs(s,    out) {
  out = ""
  while (match(s, /cf_[a-z0-9_*]+\(\)/)) {
    out = out substr(s, 1, RSTART - 1) "\\fB" \
          substr(s, RSTART, RLENGTH - 2) "\\fR()"
    s = substr(s, RSTART + RLENGTH)
  }
  return out s
}

# One line of a header comment as troff text: `name` in italics (the header
# quotes parameters so), other `code` in bold, backslashes and hyphens
# escaped, and no line that troff would take for a request.
function esc_text(s,    out, span, at, len) {
  s = repl(s, "\\", "\\e")
  out = ""
  while (match(s, /`[^`]+`/)) {
    at = RSTART  # fnrefs() matches too
    len = RLENGTH
    out = out fnrefs(hyphens(substr(s, 1, at - 1), 0))
    span = substr(s, at + 1, len - 2)
    if (span ~ /^[A-Za-z_][A-Za-z_0-9]*$/)
      out = out "\\fI" span "\\fR"
    else
      out = out "\\fB" repl(hyphens(span, 1), "'", "\\(aq") "\\fR"
    s = substr(s, at + len)
  }
  out = out fnrefs(hyphens(s, 0))
  out = repl(out, "`", "\\(ga")
  if (out ~ /^[.']/)
    out = "\\&" out
  # An abbreviation ending a line would end a sentence for troff.
  if (out ~ /(e\.g|i\.e)\.$/)
    out = out "\\&"
  return out
}

# ---- header comments as troff ------------------------------------------------

# The text of a comment (or of several, one after the other): the comment
# markers go, and so does a line's leading " * ".  A line without that star
# (the wrapped tail of a comment beside a field) loses all of its leading
# blanks: only starred lines keep an indentation that means something.
function comment_lines(text, L,    n, i, s, k) {
  n = split(text, L, "\n")
  for (i = 1; i <= n; i++) {
    s = L[i]
    gsub(/\t/, "        ", s)
    if (s ~ /^[ ]*\/\*/) {
      sub(/^[ ]*\/\*+/, "", s)
      sub(/^ /, "", s)
    } else if (s ~ /^[ ]*\*/ && s !~ /^[ ]*\*\//) {
      sub(/^[ ]*\* ?/, "", s)
    } else {
      sub(/^[ ]+/, "", s)
    }
    sub(/[ ]*\*+\/[ ]*$/, "", s)
    sub(/[ ]+$/, "", s)
    L[i] = s
  }
  # No blank line first or last.
  while (n > 0 && L[n] == "")
    n--
  for (k = 1; k <= n && L[k] == ""; k++)
    ;
  for (i = k; i <= n; i++)
    L[i - k + 1] = L[i]
  return n - k + 1
}

# A comment as troff.  Paragraphs are filled; "- " items (after a blank
# line, a line ending in ':', or another item) become a bulleted list, their
# more indented lines part of the item; other indented lines are a table
# (see table()).  mode "tp": the text is the body of a .TP (a field), so
# paragraphs are .IP and lists sit in .RS/.RE.
function fmt(text, mode,    L, n, i, s, ind, out, inlist, lind, pre, para,
             prev, started) {
  n = comment_lines(text, L)
  out = pre = ""
  inlist = para = started = 0
  prev = ""
  for (i = 1; i <= n; i++) {
    s = L[i]
    if (s == "") {
      if (pre != "") { out = out table(pre, mode); pre = "" }
      if (inlist) { if (mode == "tp") out = out ".RE\n"; inlist = 0 }
      para = 1
      prev = ""
      continue
    }
    match(s, /[^ ]/)
    ind = RSTART - 1
    if (s ~ /^ *- [^ ]/ && (inlist || prev == "" || prev ~ /:$/)) {
      if (pre != "") { out = out table(pre, mode); pre = "" }
      if (!inlist && mode == "tp") out = out ".RS\n"
      inlist = 1
      lind = ind
      sub(/^ *- /, "", s)
      out = out ".IP \\(bu 2\n" esc_text(s) "\n"
      para = 0
    } else if (inlist && ind > lind) {
      out = out esc_text(trim(s)) "\n"
    } else {
      if (inlist) {
        if (mode == "tp") out = out ".RE\n"
        inlist = 0
        para = 1
      }
      if (ind > 0) {
        pre = pre s "\n"
      } else {
        if (pre != "") { out = out table(pre, mode); pre = ""; para = 1 }
        if (para && started) out = out (mode == "tp" ? ".IP\n" : ".PP\n")
        out = out esc_text(s) "\n"
      }
      para = 0
    }
    started = 1
    prev = s
  }
  if (pre != "") out = out table(pre, mode)
  if (inlist && mode == "tp") out = out ".RE\n"
  return out
}

# Indented lines of a comment, such as
#     CF_OK         the task succeeded; *data / *len (each may be NULL) give
#                   its result, ...
#     CF_ETASK      the task failed ...
# as a list that troff fills to any width: a row starts at the least
# indented lines, its term ends at two blanks (.TP), and more indented
# lines continue its text; a row with no such term hangs (.HP), as in
#     CF_ECANCELLED, CF_EBROKEN, CF_ESHUTDOWN, CF_EWORKERDIED, CF_ENOMEM, or
#                   an error returned by the input function.
function table(buf, mode,    P, n, i, s, base, col, out, term) {
  n = split(buf, P, "\n") - 1
  base = 1000
  col = 0
  for (i = 1; i <= n; i++) {
    match(P[i], /[^ ]/)
    if (RSTART - 1 < base) base = RSTART - 1
  }
  for (i = 1; i <= n; i++) {
    s = substr(P[i], base + 1)
    if (col == 0 && s ~ /^[^ ]/ && match(s, /[^ ]  +[^ ]/))
      col = RSTART + RLENGTH - 2
  }
  if (col == 0 || col > 40)
    col = 4
  # Rows one under the other (.PD 0), as in the header; not justified,
  # since terms such as item->error_code do not break.
  out = (mode == "tp" ? ".RS\n" : ".RS 2\n") ".PD 0\n.na\n"
  for (i = 1; i <= n; i++) {
    s = substr(P[i], base + 1)
    if (s ~ /^ /)
      out = out esc_text(trim(s)) "\n"
    else if (match(s, /[^ ]  +[^ ]/)) {
      term = substr(s, 1, RSTART)  # before esc_text(), which matches too
      s = substr(s, RSTART + RLENGTH - 1)
      out = out ".TP " col "\n" esc_text(term) "\n" esc_text(s) "\n"
    } else
      out = out ".HP " col "\n" esc_text(s) "\n"
  }
  return out ".ad\n.PD\n.RE\n"
}

# ---- reading the header ------------------------------------------------------

# The comment state and brace depth of a declaration, after one more line.
function scan(s,    i, c, n) {
  n = length(s)
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (dcmt) {
      if (c == "*" && substr(s, i + 1, 1) == "/") { dcmt = 0; i++ }
      continue
    }
    if (c == "/" && substr(s, i + 1, 1) == "*") { dcmt = 1; i++; continue }
    if (c == "\"") {
      for (i++; i <= n && substr(s, i, 1) != "\""; i++)
        if (substr(s, i, 1) == "\\") i++
      dlast = "\""
      continue
    }
    if (c == "{") ddepth++
    else if (c == "}") ddepth--
    if (c != " " && c != "\t") dlast = c
  }
}

# The name a declaration declares, or "" (#if, #include, a bare enum).
function decl_name(t,    c, i) {
  c = oneline(strip_comments(t))
  if (c ~ /^# *define /) {
    sub(/^# *define /, "", c)
    match(c, /^[A-Za-z_][A-Za-z_0-9]*/)
    return substr(c, 1, RLENGTH)
  }
  if (c ~ /^#/)
    return ""
  if (c ~ /^CF_API /) {
    c = trim(substr(c, 1, index(c, "(") - 1))
    match(c, /[A-Za-z_][A-Za-z_0-9]*$/)
    return substr(c, RSTART)
  }
  if (c ~ /^typedef /) {
    if (index(c, "{") == 0 &&
        match(c, /\( *\* *[A-Za-z_][A-Za-z_0-9]* *\)/)) {
      c = substr(c, RSTART, RLENGTH)
      gsub(/[()* ]/, "", c)
      return c
    }
    sub(/ *; *$/, "", c)
    match(c, /[A-Za-z_][A-Za-z_0-9]*$/)
    return substr(c, RSTART)
  }
  return ""
}

function decl_end(    name) {
  dopen = 0
  name = decl_name(dtext[nd])
  dname[nd] = name
  if (name != "" && !(name in byname))
    byname[name] = nd
}

function header_line(s) {
  hl++
  if (in_cmt) {
    btext[nb] = btext[nb] "\n" s
    if (index(s, "*/")) { in_cmt = 0; bend[nb] = hl }
    return
  }
  if (dopen) {
    dtext[nd] = dtext[nd] "\n" s
    scan(s)
    if (dcmt || ddepth > 0)
      return
    if (dtext[nd] ~ /^[ \t]*#/ ? s !~ /\\$/ : dlast == ";")
      decl_end()
    return
  }
  if (s ~ /^[ \t]*$/) {
    group = 0
    return
  }
  if (s ~ /^[ \t]*\/\*/) {
    group = 0
    # A banner: a line of dashes, the section's title, dashes again.
    if (s ~ /^\/\* *--*-- *\*\/$/) {
      banner = banner == 1 ? 0 : banner == 2 ? 0 : 1
      if (banner == 0 && btitle != "") { section = btitle; btitle = "" }
      return
    }
    if (banner == 1 && s ~ /^\/\*.*\*\/$/) {
      btitle = s
      sub(/^\/\* */, "", btitle)
      sub(/ *\*\/$/, "", btitle)
      banner = 2
      return
    }
    banner = 0
    nb++
    btext[nb] = s
    bsection[nb] = section
    battached[nb] = 0
    if (index(substr(s, index(s, "/*") + 2), "*/")) bend[nb] = hl
    else in_cmt = 1
    return
  }
  banner = 0
  # The C++ guard's braces are not declarations.
  if (s ~ /^extern "C" *\{/ || s ~ /^\} *$/)
    return
  if (!group) {
    ng++
    group = ng
    gcomment[ng] = 0
    if (nb > 0 && bend[nb] == hl - 1 && !battached[nb]) {
      gcomment[ng] = nb
      battached[nb] = 1
    }
  }
  nd++
  dtext[nd] = s
  dgroup[nd] = group
  dopen = 1
  dcmt = ddepth = 0
  dlast = ""
  scan(s)
  if (!dcmt && ddepth <= 0 &&
      (s ~ /^[ \t]*#/ ? s !~ /\\$/ : dlast == ";"))
    decl_end()
}

# ---- fields of a struct, constants of an enum --------------------------------

# Fills mname[1..], mdoc[1..] with the members of declaration d that have
# words: a comment on the lines just above a member, or beside it (after
# it on the line where it ends, wrapped lines included), is its comment.  A
# member without one that follows a member commented from above, with no
# blank line between, shares that comment (as `initarg` and `initarg_len`
# share the initializer's).  Returns the number of entries.
function members(d,    t, isenum, i, n, c, line, cur, nm, lead, curdoc, j,
                 cm, pdepth, bdepth, last, lastline, lnonblank, blank,
                 isleads, blanks, names, docs, owner, k, out) {
  t = dtext[d]
  isenum = t ~ /^[ \t]*typedef[ \t]+enum/
  i = index(strip_comments(t), "{") ? index(t, "{") : 0
  if (i == 0)
    return 0
  n = length(t)
  line = 0
  cur = lead = curdoc = ""
  nm = pdepth = bdepth = last = blank = 0
  lnonblank = 1
  for (i++; i <= n; i++) {
    c = substr(t, i, 1)
    if (c == "\n") {
      if (!lnonblank) blank = 1
      lnonblank = 0
      line++
      cur = cur " "
      continue
    }
    if (c == "/" && substr(t, i + 1, 1) == "*") {
      j = index(substr(t, i + 2), "*/")
      if (j == 0) j = n
      cm = substr(t, i, j + 3)
      if (trim(cur) != "")
        curdoc = curdoc (curdoc == "" ? "" : "\n\n") cm
      else if (last && lastline == line)
        docs[last] = docs[last] (docs[last] == "" ? "" : "\n\n") cm
      else
        lead = lead (lead == "" ? "" : "\n\n") cm
      line += gsub(/\n/, "\n", cm)
      i += j + 2
      lnonblank = 1
      continue
    }
    if (c != " " && c != "\t") lnonblank = 1
    if (c == "(") pdepth++
    else if (c == ")") pdepth--
    else if (c == "{") bdepth++
    else if (c == "}" && bdepth-- == 0) {
      if (isenum && trim(cur) != "")
        nm = member_add(nm, names, docs, isleads, blanks, cur, lead, curdoc,
                        blank)
      break
    }
    if (pdepth == 0 && bdepth == 0 && c == (isenum ? "," : ";")) {
      nm = member_add(nm, names, docs, isleads, blanks, cur, lead, curdoc,
                      blank)
      blank = 0
      cur = lead = curdoc = ""
      last = nm
      lastline = line
      continue
    }
    cur = cur c
  }
  out = owner = 0
  for (k = 1; k <= nm; k++) {
    c = member_name(names[k], isenum)
    if (docs[k] != "") {
      out++
      mname[out] = c
      mdoc[out] = docs[k]
      owner = isleads[k] ? out : 0
    } else if (owner && !blanks[k]) {
      mname[owner] = mname[owner] ", " c
    } else {
      owner = 0
    }
  }
  return out
}

function member_add(nm, names, docs, isleads, blanks, cur, lead, curdoc,
                    blank) {
  nm++
  names[nm] = cur
  docs[nm] = lead (lead != "" && curdoc != "" ? "\n\n" : "") curdoc
  isleads[nm] = lead != ""
  blanks[nm] = blank
  return nm
}

function member_name(s, isenum) {
  s = oneline(s)
  if (isenum) {
    match(s, /^[A-Za-z_][A-Za-z_0-9]*/)
    return substr(s, 1, RLENGTH)
  }
  if (match(s, /\( *\* *[A-Za-z_][A-Za-z_0-9]* *\)/)) {
    s = substr(s, RSTART, RLENGTH)
    gsub(/[()* ]/, "", s)
    return s
  }
  sub(/ *\[[^]]*\]$/, "", s)
  sub(/ *:.*$/, "", s)
  match(s, /[A-Za-z_][A-Za-z_0-9]*$/)
  return substr(s, RSTART)
}

# ---- declarations as SYNOPSIS lines ------------------------------------------

# A parameter: its name in italics.
function param(p,    pre) {
  p = trim(p)
  if (p == "void" || p == "..." || !match(p, /[A-Za-z_][A-Za-z_0-9]*$/) ||
      RSTART == 1 || substr(p, RSTART - 1, 1) !~ /[ *]/)
    return esc_code(p)
  pre = substr(p, 1, RSTART - 1)
  return esc_code(pre) "\\fI" substr(p, RSTART) "\\fR"
}

# A prototype or a function-pointer typedef on as few lines as fit 72
# columns (the SYNOPSIS is indented by 7), continued under its '('; bold is
# the function's name (bold = 1), italics its parameters' names.
function fmt_call(c, bold,    open, head, name, rest, tail, parts, nparts, i,
                  k, depth, ch, start, out, line, w, w0, pw, piece) {
  if (bold) {
    open = index(c, "(")
  } else {
    open = index(c, ")")
    open += index(substr(c, open + 1), "(")
  }
  head = substr(c, 1, open - 1)
  rest = substr(c, open + 1)
  # The closing parenthesis of the list, and what follows (");").
  depth = 0
  for (i = 1; i <= length(rest); i++) {
    ch = substr(rest, i, 1)
    if (ch == "(") depth++
    else if (ch == ")" && depth-- == 0) break
  }
  tail = substr(rest, i)
  rest = substr(rest, 1, i - 1)
  nparts = 0
  depth = 0
  start = 1
  for (i = 1; i <= length(rest) + 1; i++) {
    ch = substr(rest, i, 1)
    if (ch == "(") depth++
    else if (ch == ")") depth--
    else if ((ch == "," && depth == 0) || i > length(rest)) {
      parts[++nparts] = trim(substr(rest, start, i - start))
      start = i + 1
    }
  }
  if (bold) {
    match(head, /[A-Za-z_][A-Za-z_0-9]*$/)
    name = substr(head, RSTART)
    line = esc_code(substr(head, 1, RSTART - 1)) "\\fB" name "\\fR("
  } else {
    line = esc_code(head) "("
  }
  w0 = w = length(head) + 1
  out = ""
  for (k = 1; k <= nparts; k++) {
    piece = param(parts[k]) (k < nparts ? "," : esc_code(tail))
    pw = length(parts[k]) + (k < nparts ? 1 : length(tail))
    if (k > 1 && w + 1 + pw > 72) {
      out = out line "\n"
      line = spaces(w0) piece
      w = w0 + pw
    } else {
      line = line (k > 1 ? " " : "") piece
      w += (k > 1 ? 1 : 0) + pw
    }
  }
  return out line
}

# A #define: on one line when that fits, else its own lines, each within
# 72 columns (broken at a blank, with a backslash).
function fmt_define(t,    c, L, n, i, s, out, cut) {
  c = strip_comments(t)
  if (length(oneline(repl(c, "\\\n", " "))) <= 72)
    return esc_code(oneline(repl(c, "\\\n", " ")))
  n = split(c, L, "\n")
  out = ""
  for (i = 1; i <= n; i++) {
    s = L[i]
    sub(/[ \t]*\\$/, " \\", s)
    sub(/[ \t]+$/, "", s)
    while (length(s) > 72) {
      for (cut = 70; cut > 8 && substr(s, cut, 1) != " "; cut--)
        ;
      if (cut <= 8)
        break
      out = out esc_code(substr(s, 1, cut) "\\") "\n"
      s = "    " trim(substr(s, cut + 1))
    }
    out = out esc_code(s) "\n"
  }
  sub(/\n$/, "", out)
  return out
}

# Declaration d as it goes in a SYNOPSIS.
function synopsis(d,    t, c, L, n, i, out, s) {
  t = dtext[d]
  c = oneline(strip_comments(t))
  if (c ~ /^#/)
    return fmt_define(t)
  if (c ~ /^CF_API /) {
    sub(/^CF_API /, "", c)
    gsub(/ *CF_PRINTF\([^)]*\)/, "", c)  # an attribute, not the interface
    return fmt_call(c, 1)
  }
  if (index(c, "{") == 0 && c ~ /^typedef .*\( *\* *[A-Za-z_]/)
    return fmt_call(c, 0)
  if (index(c, "{") == 0)
    return esc_code(c)
  # A struct or enum: its lines without their comments.
  n = split(strip_comments(t), L, "\n")
  out = ""
  for (i = 1; i <= n; i++) {
    s = L[i]
    sub(/[ \t]+$/, "", s)
    if (s != "")
      out = out (out == "" ? "" : "\n") esc_code(s)
  }
  return out
}

# ---- reading the .desc files -------------------------------------------------

function desc_start(    f) {
  np++
  f = FILENAME
  sub(/^.*\//, "", f)
  sub(/\.desc$/, "", f)
  pname[np] = f
  pfile[np] = FILENAME
  pbrief[np] = pseen[np] = praw[np] = ""
  pnitems[np] = 0
  pfuncs[np] = ""
  inraw = 0
}

function desc_line(s,    kind, head, rest, k) {
  if (inraw) {
    praw[np] = praw[np] s "\n"
    return
  }
  if (s ~ /^\./) {
    inraw = 1
    praw[np] = s "\n"
    return
  }
  if (s ~ /^[ \t]*(#|$)/)
    return
  kind = s
  sub(/[ \t].*$/, "", kind)
  rest = s
  sub(/^[^ \t]*[ \t]*/, "", rest)
  if (kind == "brief") { pbrief[np] = rest; return }
  if (kind == "see") { pseen[np] = trim(pseen[np] " " rest); return }
  if (kind != "func" && kind != "type" && kind != "macro" &&
      kind != "section")
    die(FILENAME ":" FNR ": unknown keyword '" kind "'")
  head = ""
  if ((k = index(rest, "\"")) > 0) {
    head = substr(rest, k + 1)
    sub(/".*$/, "", head)
    rest = substr(rest, 1, k - 1)
  }
  k = ++pnitems[np]
  ikind[np, k] = kind
  inames[np, k] = trim(rest)
  ihead[np, k] = head
  if (kind == "func")
    pfuncs[np] = trim(pfuncs[np] " " trim(rest))
}

# ---- writing pages -----------------------------------------------------------

# The units of page p's DESCRIPTION, in the .desc's order: unit u is one
# header group (uhead, and the page's declarations of it in udecls) or free
# comments (utext).  Every name is checked against the header.  A struct
# brings its initializer along: cf_map_item, the macro CF_MAP_ITEM_INIT.
function units(p,    k, n, N, i, d, nu, kind, who, b, init) {
  nu = 0
  who = pfile[p]
  split("", useen)
  for (k = 1; k <= pnitems[p]; k++) {
    kind = ikind[p, k]
    if (kind == "section") {
      nu++
      uhead[nu] = ihead[p, k] != "" ? ihead[p, k] : inames[p, k]
      udecls[nu] = ""
      utext[nu] = ""
      for (b = 1; b <= nb; b++)
        if (!battached[b] && bsection[b] == inames[p, k])
          utext[nu] = utext[nu] (utext[nu] == "" ? "" : "\n\n") btext[b]
      if (utext[nu] == "")
        die(who ": no free comment in the header's section '" \
            inames[p, k] "'")
      continue
    }
    n = split(inames[p, k], N, " ")
    for (i = 1; i <= n; i++) {
      if (!(N[i] in byname))
        die(who ": " N[i] " is not declared in the header")
      d = byname[N[i]]
      if ((kind == "func") != (dtext[d] ~ /^CF_API/) ||
          (kind == "macro") != (dtext[d] ~ /^[ \t]*#/))
        die(who ": " N[i] " is not a " kind)
      nu = unit_add(nu, d, ihead[p, k])
      init = toupper(N[i]) "_INIT"
      if (kind == "type" && dtext[d] ~ /struct[^;]*\{/ && init in byname &&
          dtext[byname[init]] ~ /^[ \t]*#/)
        nu = unit_add(nu, byname[init], "")
    }
  }
  # Headings not given: the names of the unit's declarations.
  for (i = 1; i <= nu; i++) {
    if (uhead[i] != "")
      continue
    n = split(udecls[i], N, " ")
    for (k = 1; k <= n; k++)
      uhead[i] = uhead[i] (k > 1 ? ", " : "") dname[N[k]] \
                 (dtext[N[k]] ~ /^CF_API/ ? "()" : "")
  }
  return nu
}

# Declaration d into the unit of its group (a new one if it has none yet).
function unit_add(nu, d, head,    g) {
  g = dgroup[d]
  if (!(g in useen)) {
    useen[g] = ++nu
    uhead[nu] = head
    udecls[nu] = ""
    utext[nu] = gcomment[g] ? btext[gcomment[g]] : ""
  }
  if ((" " udecls[useen[g]] " ") !~ (" " d " "))
    udecls[useen[g]] = trim(udecls[useen[g]] " " d)
  return nu
}

# Unit u's words: its comment, then its struct's or enum's members.
function unit_body(u,    out, n, N, k, m, i) {
  out = utext[u] != "" ? fmt(utext[u], "top") : ""
  n = split(udecls[u], N, " ")
  for (k = 1; k <= n; k++) {
    m = members(N[k])
    for (i = 1; i <= m; i++)
      out = out ".TP\n" (dtext[N[k]] ~ /enum/ ? ".BR " : ".IR ") \
            repl(mname[i], ", ", " \", \" ") "\n" fmt(mdoc[i], "tp")
  }
  return out
}

function seealso(list,    n, N, i, out, s) {
  n = split(list, N, " ")
  out = ""
  for (i = 1; i <= n; i++) {
    s = N[i]
    if (s !~ /\(/)
      s = s "(3)"
    sub(/\(/, " (", s)
    sub(/$/, i < n ? "," : "", s)
    out = out ".BR " esc_code(s) "\n"
  }
  return out
}

# @index: every other page, with its functions and its brief.
function index_list(self,    p, n, N, i, out, f) {
  out = ""
  for (p = 1; p <= np; p++) {
    if (p == self)
      continue
    out = out ".TP\n.BR " pname[p] " (3)\n"
    n = split(pfuncs[p], N, " ")
    f = ""
    for (i = 1; i <= n; i++)
      f = f (i > 1 ? ", " : "") "\\fB" N[i] "\\fR()"
    out = out esc_text(pbrief[p]) (f != "" ? ":\n" f : "") "\n"
  }
  return out
}

# The raw troff of a page, with its @doc and @index lines expanded.
function raw(p,    n, L, i, s, out, nu, u, kind) {
  n = split(praw[p], L, "\n")
  out = ""
  for (i = 1; i < n; i++) {
    s = L[i]
    if (s == "@index") {
      out = out index_list(p)
    } else if (s ~ /^@doc /) {
      # "@doc KIND NAMES": the words of those declarations (as a page item
      # would give them, without headings), here; e.g. the conventions.
      sub(/^@doc /, "", s)
      kind = s
      sub(/ .*$/, "", kind)
      sub(/^[^ ]* */, "", s)
      ikind[0, 1] = kind
      inames[0, 1] = s
      ihead[0, 1] = ""
      pnitems[0] = 1
      pfile[0] = pfile[p]
      nu = units(0)
      for (u = 1; u <= nu; u++)
        out = out (u > 1 ? ".PP\n" : "") unit_body(u)
    } else if (s ~ /^@/) {
      die(pfile[p] ": unknown directive " s)
    } else {
      out = out s "\n"
    }
  }
  return out
}

# A library name in bold troff: its hyphens are minus signs.
function esc_lib(s) {
  gsub(/-/, "\\-", s)
  return s
}

function write_page(p,    f, out, nu, u, n, N, i, d, sorted, nsorted, j,
                    names, body, nbody) {
  f = outdir "/" pname[p] ".3"
  names = pfuncs[p] != "" ? repl(pfuncs[p], " ", ", ") : pname[p]
  out = ".\\\" Made by man/mkman.sh from include/" lib ".h and man/" \
        pname[p] ".desc:\n.\\\" edit those, not this file.\n"
  out = out ".TH " toupper(pname[p]) " 3 \"" date "\" \"cfutures " version \
        "\" \"cfutures Manual\"\n"
  # No hyphenation: cf_future_add_done_call-back would read as two words.
  # HY too, which .EE restores hyphenation from.
  out = out ".nr HY 0\n.nh\n"
  out = out ".SH NAME\n" names " \\- " esc_text(pbrief[p]) "\n"
  out = out ".SH LIBRARY\n" lib " (\\fB\\-l" esc_lib(lib) "\\fR; flags from\n" \
        "\\fBpkg\\-config \\-\\-cflags \\-\\-libs " esc_lib(lib) "\\fR)\n"
  nu = pnitems[p] ? units(p) : 0
  if (nu > 0) {
    # SYNOPSIS: the page's declarations in header order (as C needs them).
    nsorted = 0
    for (u = 1; u <= nu; u++) {
      n = split(udecls[u], N, " ")
      for (i = 1; i <= n; i++)
        sorted[++nsorted] = N[i] + 0
    }
    for (i = 2; i <= nsorted; i++)
      for (j = i; j > 1 && sorted[j - 1] > sorted[j]; j--) {
        d = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = d
      }
    out = out ".SH SYNOPSIS\n.nf\n.B #include <" lib ".h>\n"
    for (i = 1; i <= nsorted; i++) {
      d = sorted[i]
      if (i == 1 || dgroup[d] != dgroup[sorted[i - 1]] ||
          synopsis(d) ~ /\n/ || synopsis(sorted[i - 1]) ~ /\n/)
        out = out ".sp\n"
      out = out synopsis(d) "\n"
    }
    out = out ".fi\n"
    # Units with words (an opaque typedef has none), under headings when
    # there are several.
    nbody = 0
    for (u = 1; u <= nu; u++)
      if ((body[u] = unit_body(u)) != "")
        nbody++
    if (nbody > 0)
      out = out ".SH DESCRIPTION\n"
    for (u = 1; u <= nu; u++)
      if (body[u] != "")
        out = out (nbody > 1 ? ".SS \"" uhead[u] "\"\n" : "") body[u]
  }
  out = out raw(p)
  if (pseen[p] != "")
    out = out ".SH SEE ALSO\n" seealso(pseen[p])
  printf "%s", out > f
  close(f)
  # The other functions of the family: a page each that includes this one.
  n = split(pfuncs[p], N, " ")
  for (i = 1; i <= n; i++) {
    if (N[i] == pname[p])
      continue
    if (N[i] in stubof)
      die(pfile[p] ": " N[i] " is on " stubof[N[i]] ".3 already")
    stubof[N[i]] = pname[p]
    f = outdir "/" N[i] ".3"
    print ".so man3/" pname[p] ".3" > f
    close(f)
  }
  if (pname[p] in stubof)
    die(pfile[p] ": " pname[p] ".3 is a stub of " stubof[pname[p]] ".3")
  stubof[pname[p]] = pname[p]
}

FNR == 1 { nfile++ }
nfile == 1 { header_line($0); next }
FNR == 1 { desc_start() }
{ desc_line($0) }

END {
  if (failed)
    exit 1
  if (nfile < 2)
    die("usage: awk -f mkman.awk HEADER DESC...")
  for (page = 1; page <= np; page++)
    write_page(page)
  # A function no page lists: make check (tests/check_man.sh) fails on it;
  # the build goes on, so that the rest of the documentation installs.
  for (decl = 1; decl <= nd; decl++)
    if (dtext[decl] ~ /^CF_API/ && !(dname[decl] in stubof))
      print "mkman: warning: " dname[decl] " has no page (add it to a" \
            " man/*.desc)" > "/dev/stderr"
}
