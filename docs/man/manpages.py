#!/usr/bin/env python3
"""Reference pages (man section 3) for cio, made from include/cio.h.

The header is the one source of truth: each page is a group of declarations
together with the comment that opens the group, so a page can never say
something the header does not, and a new function gets its page the moment it
is declared. What the header cannot hold comes from two other files:

  docs/asyncio-mapping.md   asyncio's name and the differences, per function
                            (the rows that name the function)
  docs/man/extra/<page>.md  optional hand-written sections for one page
                            ("# EXAMPLE", "# NOTES", "# SEE ALSO"...), in a
                            small Markdown: paragraphs, `code`, fenced blocks,
                            and "@example examples/<file>.c" to quote a whole
                            example program (so the quoted code compiles)

Two commands:

  manpages.py generate <cio.h> <asyncio-mapping.md> <extra-dir> <out-dir>
      writes <out-dir>/man3/*.3: one page per group, a ".so" link page for
      every other function of the group (so `man cio_queue_put` works), and
      cio.3, the overview (the header's opening comment and every page).

  manpages.py check <what> <cio.h> <out-dir>
      what = pages: every public function has a page (or a link to one) whose
                    NAME line lists it;
             synopsis: every page's SYNOPSIS holds exactly the prototypes the
                    header declares for its functions, character for
                    character once white space is collapsed;
             documented: every public function has a comment of its own in
                    the header (a declaration group with no comment before it
                    fails: whoever adds a function writes its doc).
      It exits 1 and names each offender.

How the header is read. A "section" starts at a banner comment (a line of
dashes); its first line is the section's title and the rest of the banner is
text that holds for every call of the section. Inside a section, a "group" is
a comment followed by the declarations right under it, up to a blank line or
the next comment. A group with at least one function is a page, named after
its first function, or after the opaque type it declares
(`typedef struct cio_lock cio_lock;` makes the page cio_lock).

Only the Python 3 standard library is used (Debian's python3).
"""

import os
import re
import sys

# ---------------------------------------------------------------------------
# Reading the header
# ---------------------------------------------------------------------------

BANNER = re.compile(r"^/\* -{20,}\s*$")
FUNC_NAME = re.compile(r"\b(cio_[a-z0-9_]+)\s*\(")
OPAQUE = re.compile(r"^typedef\s+struct\s+(cio_[a-z0-9_]+)\s+\1\s*;$")


class Group:
    def __init__(self, section):
        self.section = section
        self.comment = []  # the comment's text lines (markers stripped)
        self.decls = []  # declarations, each as its source lines
        self.line = 0  # line number of the group's start, for messages

    def functions(self):
        """(name, prototype) for each function declaration of the group."""
        out = []
        for d in self.decls:
            # A comment at the end of a declaration's line is not part of it.
            text = re.sub(r"/\*.*?\*/", " ", " ".join(d)).strip()
            if text.startswith("typedef") or text.startswith("#"):
                continue
            m = FUNC_NAME.search(text)
            if m and text.rstrip().endswith(";") and "{" not in text:
                out.append((m.group(1), normalize(text)))
        return out

    def page_name(self):
        for d in self.decls:
            m = OPAQUE.match(normalize(" ".join(d)))
            if m:
                return m.group(1)
        funcs = self.functions()
        return funcs[0][0] if funcs else None


class Section:
    def __init__(self, title, text):
        self.title = title
        self.text = text  # comment lines after the title
        self.groups = []


def normalize(text):
    """One space for every run of white space, none inside parentheses' edges."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+\)", ")", text)
    return text


def strip_comment_line(line):
    """The text of one line of a block comment, markers removed, indent kept."""
    s = line.rstrip()
    s = re.sub(r"^\s*/\*+", "", s)
    s = re.sub(r"\s*\*+/$", "", s)
    s = re.sub(r"^\s*\*(?!/)", "", s)
    if s.startswith(" "):
        s = s[1:]
    return s


def read_header(path):
    """Returns (opening comment lines, [Section]) of the header."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    opening = []
    i = 0
    # The opening comment: from the first line to the first "*/".
    if lines and lines[0].startswith("/*"):
        while i < len(lines):
            opening.append(strip_comment_line(lines[i]))
            if "*/" in lines[i]:
                i += 1
                break
            i += 1
    while opening and opening[0].strip() == "":
        opening.pop(0)
    while opening and opening[-1].strip() == "":
        opening.pop()

    sections = [Section("Preamble", [])]
    group = None
    depth = 0  # braces of a struct or enum being read
    decl = None  # the declaration being read, as lines
    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        # The line without a comment at its end: "int f(void); /* why */"
        # ends its declaration as "int f(void);" does.
        code = re.sub(r"/\*.*?\*/", "", s).strip()
        if decl is not None:
            decl.append(raw.rstrip())
            depth += raw.count("{") - raw.count("}")
            if depth == 0 and code.endswith(";"):
                group.decls.append(decl)
                decl = None
            i += 1
            continue
        if BANNER.match(s):
            # A section banner: title lines until a blank comment line or
            # the closing dashes, then the section's own text.
            body = []
            i += 1
            while i < len(lines) and not re.match(r"^\s*\*\s*-{20,}\s*\*/", lines[i]):
                body.append(strip_comment_line(lines[i]))
                i += 1
            i += 1
            title = []
            while body and body[0].strip():
                title.append(body.pop(0).strip())
            while body and not body[0].strip():
                body.pop(0)
            sections.append(Section(" ".join(title), body))
            group = None
            continue
        if s == "":
            group = None
            i += 1
            continue
        if s.startswith("/*"):
            text = []
            while True:
                text.append(strip_comment_line(lines[i]))
                if "*/" in lines[i]:
                    break
                i += 1
            i += 1
            if group is None or group.decls:
                group = Group(sections[-1])
                group.line = i
                sections[-1].groups.append(group)
            elif group.comment:
                group.comment.append("")
            group.comment.extend(text)
            continue
        if s.startswith("#"):
            # Preprocessor lines: #define belongs to the group (it is part of
            # the API); includes and pragmas end it.
            if s.startswith("#define") and not s.startswith("#define CIO_H"):
                if group is None:
                    group = Group(sections[-1])
                    group.line = i + 1
                    sections[-1].groups.append(group)
                define = [raw.rstrip()]
                # A definition continued with backslashes is one line of C.
                while define[-1].endswith("\\") and i + 1 < len(lines):
                    i += 1
                    define.append(lines[i].rstrip())
                group.decls.append(define)
            elif s.startswith("#include") or s.startswith("#pragma"):
                group = None
            # Conditionals (#if, #ifdef, #else, #endif) leave the group as
            # it is: a comment above "#ifdef X" documents what follows it.
            i += 1
            continue
        if s in ("}", 'extern "C" {') or s.startswith("struct ") and s.endswith(";") \
                and "{" not in s and "(" not in s:
            # Forward declarations (struct sockaddr;) and the C++ guard are
            # not part of any group's synopsis.
            i += 1
            continue
        if group is None:
            group = Group(sections[-1])
            group.line = i + 1
            sections[-1].groups.append(group)
        decl = [raw.rstrip()]
        depth = raw.count("{") - raw.count("}")
        if depth == 0 and code.endswith(";"):
            group.decls.append(decl)
            decl = None
        i += 1
    return opening, sections


def header_functions(path):
    """Every function the header declares, found without the group parser:
    a line that starts with a return type and then cio_name( (the same rule
    as tests/check_api_coverage.sh), so the check does not trust the
    generator's own reading."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^[a-z_][a-z0-9_ ]*[ *]+(cio_[a-z0-9_]+)\(", line)
            if m and not line.startswith("typedef"):
                names.append(m.group(1))
    return names


def header_prototypes(path):
    """name -> normalized prototype, read statement by statement."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"\\\n", " ", text)  # continued preprocessor lines are one line
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    protos = {}
    for stmt in text.split(";"):
        s = normalize(stmt)
        if s.startswith("typedef") or "{" in s or "}" in s and "(" not in s:
            s = s.split("}")[-1].strip() if "}" in s else s
        if not s or s.startswith("typedef"):
            continue
        m = re.match(r"^[a-z_][a-z0-9_ ]*[ *]+(cio_[a-z0-9_]+)\(", s)
        if m:
            protos[m.group(1)] = s + ";"
    return protos


# ---------------------------------------------------------------------------
# asyncio names (docs/asyncio-mapping.md)
# ---------------------------------------------------------------------------


def read_mapping(path, functions):
    """name -> [(asyncio cell, differences cell)] from the mapping's tables.

    The cio column names functions in full (`cio_queue_put`), by pattern
    (`cio_event_*`, `cio_sock_*_until`), or by a suffix after a full name
    (`cio_server_close`, `_close_clients`): each is resolved against the
    header's functions. A `_until` or `_with` form not named anywhere gets
    its base call's rows."""
    rows = {}
    every = []
    if not path or not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("|") or line.startswith("|---"):
                continue
            cells = [c.strip() for c in split_row(line)]
            if len(cells) < 3 or cells[0] == "asyncio":
                continue
            names = []
            last = None
            for tok in re.findall(r"\b(?:cio_[a-z0-9_*]+|_[a-z][a-z0-9_]*)", cells[1]):
                if tok.startswith("cio_") and "*" in tok:
                    pat = re.compile("^" + re.escape(tok).replace("\\*", "[a-z0-9_]*") + "$")
                    names += [f for f in sorted(functions) if pat.match(f)]
                elif tok.startswith("cio_"):
                    last = tok
                    names.append(tok)
                elif last:
                    # A suffix: the longest prefix of the last full name that
                    # makes a function with it.
                    parts = last.split("_")
                    for k in range(len(parts), 1, -1):
                        cand = "_".join(parts[:k]) + tok
                        if cand in functions:
                            names.append(cand)
                            break
            for name in dict.fromkeys(names):
                rows.setdefault(name, []).append((cells[0], cells[2]))
            every.append((cells[0], cells[2]))
    for f in functions:
        if f not in rows:
            base = re.sub(r"_(until|with)$", "", f)
            if base != f and base in rows:
                rows[f] = rows[base]
    # Last, a call named only in the differences of a row (cio_future_unref
    # in loop.create_future's) gets that row.
    for f in functions:
        if f not in rows:
            found = [r for r in every if re.search(r"\b%s\b" % f, r[1])]
            if found:
                rows[f] = found
    return rows


def split_row(line):
    """The cells of a Markdown table row; a | inside `code` stays."""
    cells, cur, code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
    cells.append(cur)
    return cells


# ---------------------------------------------------------------------------
# Writing roff
# ---------------------------------------------------------------------------


def esc(text):
    """Escapes text for roff (backslashes, dashes before words)."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w\\])-(?=[\w-])", r"\\-", text)
    # Characters outside ASCII (dashes, arrows) as groff's named Unicode
    # escapes, so that every terminal and -Tascii renders them.
    text = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)
    return text


def line_start(text):
    """A roff text line may not start with a dot or a quote."""
    if text.startswith(".") or text.startswith("'"):
        return "\\&" + text
    return text


def inline(text, functions):
    """Roff for a line of the header's prose: cio names in bold."""
    out = esc(text)

    def bold(m):
        return "\\fB" + m.group(0) + "\\fR"

    # `code` spans of the header's prose are shown in bold, without the quotes.
    out = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", out)
    out = re.sub(r"\bcio_[a-z0-9_]+(?=\(\))", bold, out)
    out = re.sub(r"\bcio_[a-z0-9_]+\b(?!\()", lambda m: bold(m) if m.group(0) in functions
                 else m.group(0), out)
    return line_start(out)


def md_inline(text, functions):
    """Roff for a line of Markdown: `code` in bold, links as their text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + esc(p[1:-1]) + "\\fR")
        else:
            p = re.sub(r"\*\*([^*]+)\*\*", r"\1", p)
            out.append(esc(p))
    return line_start("".join(out))


def prose(lines, functions):
    """Roff for comment text: paragraphs, lists and indented code blocks.

    A line indented by four or more spaces after a blank line starts a code
    block (until the next blank line); a line starting with "- " or "N. "
    starts a list item, and the indented lines under it continue it."""
    out = []
    i = 0
    n = len(lines)
    para_open = False
    while i < n:
        line = lines[i]
        if not line.strip():
            para_open = False
            i += 1
            continue
        prev_blank = i == 0 or not lines[i - 1].strip()
        item = re.match(r"^(\s*)(-|\d+\.)\s+(.*)$", line)
        if prev_blank and re.match(r"^ {4,}\S", line) and not item:
            out.append(".PP")
            out.append(".RS 4")
            out.append(".EX")
            while i < n and lines[i].strip():
                out.append(line_start(esc(lines[i].strip("\n")[4:] if lines[i].startswith("    ")
                                          else lines[i])))
                i += 1
            out.append(".EE")
            out.append(".RE")
            para_open = False
            continue
        if item:
            mark = "\\(bu" if item.group(2) == "-" else item.group(2)
            indent = len(item.group(1))
            out.append('.IP "%s" %d' % (mark, 4 if mark != "\\(bu" else 2))
            out.append(inline(item.group(3).strip(), functions))
            i += 1
            while i < n and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent \
                    and not re.match(r"^\s*(-|\d+\.)\s+", lines[i]):
                out.append(inline(lines[i].strip(), functions))
                i += 1
            para_open = True
            if i < n and not lines[i].strip():
                out.append(".PP")
                para_open = True
            continue
        if not para_open:
            if out and out[-1] != ".PP":
                out.append(".PP")
            elif not out:
                out.append(".PP")
            para_open = True
        out.append(inline(line.strip(), functions))
        i += 1
    # A paragraph mark left at the end would only add space.
    while out and out[-1] == ".PP":
        out.pop()
    return out


def synopsis_decl(decl_lines, functions):
    """Roff (in no-fill mode) for one declaration: a function prototype is
    bold with its parameter names in italics, wrapped at its commas under
    the opening parenthesis when it is longer than a line; a type or macro
    keeps the header's lines."""
    text = normalize(" ".join(decl_lines))
    if not text.startswith("typedef") and not text.startswith("#"):
        text = normalize(re.sub(r"/\*.*?\*/", " ", text))
    if text.startswith("typedef") and "(" in text and "{" not in text or \
            text.startswith("typedef") and "{" in text or text.startswith("#") or \
            text.startswith("typedef struct") or text.startswith("typedef enum"):
        return [line_start("\\fB" + esc(l) + "\\fR") if l.strip() else "" for l in
                (x.replace("\t", "    ") for x in decl_lines)]
    m = re.match(r"^(.*?\b)(cio_[a-z0-9_]+)\((.*)\);$", text)
    if not m:
        return [line_start("\\fB" + esc(text) + "\\fR")]
    head = m.group(1) + m.group(2) + "("
    params = split_params(m.group(3))
    pieces = []
    for k, p in enumerate(params):
        pieces.append(param_roff(p) + ("\\fB,\\fR" if k < len(params) - 1 else "\\fB);\\fR"))
    plain = [strip_roff(x) for x in pieces]
    out = []
    cur = "\\fB" + esc(head) + "\\fR"
    cur_len = len(head)
    width = 72
    for k, piece in enumerate(pieces):
        add = (" " if k else "") + piece
        add_len = (1 if k else 0) + len(plain[k])
        if k and cur_len + add_len > width:
            out.append(line_start(cur))
            cur = " " * len(head) + piece
            cur_len = len(head) + len(plain[k])
        else:
            cur += add
            cur_len += add_len
    out.append(line_start(cur))
    return out


def split_params(text):
    params, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            params.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        params.append(cur.strip())
    return params


def param_roff(p):
    """A parameter in bold, with its name in italics."""
    m = re.match(r"^(.*\(\s*\*\s*)([A-Za-z_]\w*)(\s*\).*)$", p)  # a function pointer
    if m:
        return "\\fB" + esc(m.group(1)) + "\\fI" + esc(m.group(2)) + "\\fB" + esc(m.group(3)) + "\\fR"
    m = re.match(r"^(.*?[\s*])([A-Za-z_]\w*)$", p)
    if m and m.group(1).strip() and p not in ("void",):
        return "\\fB" + esc(m.group(1)) + "\\fI" + esc(m.group(2)) + "\\fR"
    return "\\fB" + esc(p) + "\\fR"


def strip_roff(text):
    text = re.sub(r"\\f[BIRP]", "", text)
    text = text.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    return text


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

RETURN_START = re.compile(r"^(Returns?|On failure|On 0|Returned)\b")


def split_sentences(lines):
    """Splits the group's comment into description lines and the sentences
    that say what the call returns (those starting "Returns ..."), so that
    RETURN VALUE gathers them. Code blocks and lists stay in the
    description."""
    paras, cur = [], []
    for l in lines:
        if not l.strip():
            if cur:
                paras.append(cur)
            cur = []
            paras.append(None)
        else:
            cur.append(l)
    if cur:
        paras.append(cur)
    desc, ret = [], []
    for p in paras:
        if p is None:
            desc.append("")
            continue
        if any(re.match(r"^( {4,}|\s*(-|\d+\.)\s)", l) for l in p):
            desc.extend(p)
            continue
        text = " ".join(l.strip() for l in p)
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\-])", text)
        keep = []
        for s in sentences:
            if RETURN_START.match(s):
                ret.append(s)
            else:
                keep.append(s)
        if keep:
            desc.append(" ".join(keep))
    return desc, ret


ERROR_RE = re.compile(r"-(CIO_E[A-Z_]+(?:\([A-Za-z_]*\))?|E[A-Z0-9]{2,})\b")


def error_meanings(sections):
    """-CIO_E* code -> the comment the header gives it in its enum."""
    meanings = {}
    for sec in sections:
        for g in sec.groups:
            for d in g.decls:
                for line in d:
                    m = re.match(r"^\s*(CIO_E[A-Z]+),?\s*/\*\s*(.*?)\s*\*/", line)
                    if m:
                        meanings[m.group(1)] = m.group(2)
    meanings.setdefault("CIO_EUSER", "an application error")
    meanings.setdefault("CIO_EPOOLSHUTDOWN", "the loop's thread pool was shut down")
    meanings.setdefault("CIO_EAI", "a resolver error (getaddrinfo's EAI_* code)")
    return meanings


# Meanings of the errno codes as cio uses them (the conventions of cio(3));
# any other code gets the C library's text.
ERRNO_MEANINGS = {
    "EINVAL": "an argument is NULL, NaN, out of range or otherwise invalid (convention 2)",
    "ENOMEM": "memory ran out; nothing changed",
    "ECANCELED": "the calling task was cancelled (or the awaited future was)",
    "ETIMEDOUT": "the timeout or deadline passed",
    "EPERM": "a suspending call was made outside a task",
    "EBUSY": "a task is still inside a call on the object, or it is used otherwise",
    "EAGAIN": "the call would have to wait",
    "EDEADLK": "the call would wait for itself",
    "EBADF": "the descriptor is not open, or was closed with cio_close",
}


# "-EAGAIN when the pool has no worker ... (pthread_create failed)": the
# header's own reason for a code, which says more than any generic text.
REASON_RE = r"\s+((?:when|if|after|once|outside|while|before|unless|from|for|in)\b" \
            r"(?:[^,;.()]|\([^)]*\))*)"


def errors_section(text, sections, meanings):
    codes = []
    reasons = {}
    flat = " ".join(text.split())
    for m in ERROR_RE.finditer(flat):
        code = m.group(1)
        if code not in codes:
            codes.append(code)
        r = re.match(REASON_RE, flat[m.end():])
        if r and code not in reasons:
            reasons[code] = r.group(1).strip()
    out = []
    for code in codes:
        key = re.sub(r"\(.*\)$", "", code)
        if code in reasons:
            what = reasons[code]
        elif key.startswith("CIO_"):
            what = meanings.get(key)
        else:
            what = ERRNO_MEANINGS.get(key) or os.strerror(getattr(__import__("errno"), key, 0)) \
                if hasattr(__import__("errno"), key) else None
        out.append(".TP")
        out.append("\\fB\\-" + esc(code) + "\\fR")
        if what and not re.match(r"^\S*[._]", what):
            what = what[0].upper() + what[1:]
        out.append(line_start(esc(what + ".") if what else "See DESCRIPTION."))
    return out


VERSION = ""  # "0.2.0", read from the header's CIO_VERSION_* macros


def page_header(name, title):
    return ['.\\" Generated by docs/man/manpages.py from include/cio.h: do not edit.',
            '.\\" Section of the header: %s' % title,
            '.TH %s 3 "" "cio %s" "cio Manual"' % (name.upper(), VERSION),
            # No hyphenation (a function name split at a line end cannot be
            # searched for or copied) and ragged right.
            ".nh", ".ad l"]


def return_value_generic(funcs):
    """RETURN VALUE text for calls whose comment says nothing about it,
    from the conventions (cio(3)) and the return type."""
    kinds = set()
    for name, proto in funcs:
        ret = proto.split(name)[0].strip()
        if ret == "void":
            kinds.add("void")
        elif ret.endswith("*"):
            kinds.add("pointer")
        elif ret == "double":
            kinds.add("double")
        elif ret == "size_t":
            kinds.add("size")
        elif re.search(r"_(is_[a-z_]+|done|cancelled|locked|empty|full|broken|expired|at_eof|"
                       r"can_write_eof|is_closing|is_reading|is_serving|is_set)$", name):
            kinds.add("predicate")
        else:
            kinds.add("int")
    text = ["As DESCRIPTION says for each call; by the conventions of cio(3):"]
    if "int" in kinds:
        text.append("on success 0, or the count, descriptor or value DESCRIPTION names; on "
                    "failure a negative error code, -EINVAL for a NULL object or a bad "
                    "argument.")
    if "predicate" in kinds:
        text.append("The predicates return 1 for true and 0 for false, and 0 for NULL.")
    if "pointer" in kinds:
        text.append("The calls returning a pointer return NULL for a NULL argument.")
    if "size" in kinds:
        text.append("The calls returning size_t return 0 for a NULL argument.")
    if "double" in kinds:
        text.append("The calls returning double return NaN for a NULL argument.")
    if "void" in kinds:
        text.append("The calls returning void return nothing.")
    return text


def read_extra(path):
    """A hand-written extra file: {SECTION: [markdown lines]}."""
    out = {}
    if not os.path.exists(path):
        return out
    cur = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^#\s+([A-Z][A-Z ]+)$", line)
            if m:
                cur = m.group(1).strip()
                out.setdefault(cur, [])
            elif cur:
                out[cur].append(line)
    return out


def markdown(lines, functions, root):
    """Roff for the small Markdown of docs/man/extra."""
    out = []
    i = 0
    para = []

    def flush():
        if para:
            out.append(".PP")
            out.extend(md_inline(l.strip(), functions) for l in para)
            para.clear()

    while i < len(lines):
        l = lines[i]
        if l.startswith("```"):
            flush()
            i += 1
            out.extend([".PP", ".RS 4", ".EX"])
            while i < len(lines) and not lines[i].startswith("```"):
                out.append(line_start(esc(lines[i])))
                i += 1
            out.extend([".EE", ".RE"])
        elif l.startswith("@example "):
            flush()
            rel = l.split(None, 1)[1].strip()
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                code = f.read().rstrip("\n").split("\n")
            out.append(".PP")
            out.append(md_inline("From `%s`:" % rel, functions))
            out.extend([".PP", ".RS 4", ".EX"])
            out.extend(line_start(esc(c.replace("\t", "    "))) for c in code)
            out.extend([".EE", ".RE"])
        elif not l.strip():
            flush()
        else:
            para.append(l)
        i += 1
    flush()
    return out


def see_also(names):
    out = []
    for k, n in enumerate(names):
        out.append(".BR %s (3)%s" % (n, "," if k < len(names) - 1 else ""))
    return out


def build_pages(header, mapping_path, extra_dir, root):
    global VERSION
    opening, sections = read_header(header)
    with open(header, encoding="utf-8") as f:
        parts = dict(re.findall(r"#define CIO_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
    VERSION = "%s.%s.%s" % (parts.get("MAJOR"), parts.get("MINOR"), parts.get("PATCH"))
    meanings = error_meanings(sections)
    functions = set()
    for sec in sections:
        for g in sec.groups:
            functions.update(n for n, _ in g.functions())
    mapping = read_mapping(mapping_path, functions)

    # Type definitions a synopsis shows when a prototype uses the type:
    # structs with fields, enums and callback typedefs (opaque types are
    # only names).
    types = {}
    for sec in sections:
        for g in sec.groups:
            for d in g.decls:
                t = normalize(" ".join(d))
                m = re.match(r"^typedef .*?\b(cio_[a-z0-9_]+)\s*;$", t) if "{" in t else \
                    re.match(r"^typedef [^(]*\(\s*\*\s*(cio_[a-z0-9_]+)\)", t)
                if m and not OPAQUE.match(t):
                    types[m.group(1)] = d

    pages = {}  # name -> roff lines
    links = {}  # function -> page name
    index = []  # (section title, [page names])
    for sec in sections:
        names = [g.page_name() for g in sec.groups if g.functions()]
        summaries = [first_sentence(g.comment) if g.comment else "undocumented"
                     for g in sec.groups if g.functions()]
        for g in sec.groups:
            funcs = g.functions()
            if not funcs:
                continue
            name = g.page_name()
            if name in pages:
                raise SystemExit("manpages: two groups would make the page %s (line %d)"
                                 % (name, g.line))
            for f, _ in funcs:
                links[f] = name
            pages[name] = render_group(name, g, funcs, sec, mapping, meanings, types,
                                       functions, extra_dir, root, names)
        if names:
            index.append((sec.title, list(zip(names, summaries))))
    pages["cio"] = render_overview(opening, index, functions, extra_dir, root)
    # An extra file for a page that does not exist (a typo, or a call that
    # was renamed) would be silently left out: refuse it.
    if os.path.isdir(extra_dir):
        for f in sorted(os.listdir(extra_dir)):
            if f.endswith(".md") and f[:-3] not in pages:
                raise SystemExit("manpages: %s: there is no page %s (pages are named after "
                                 "the first function of their group)" % (os.path.join(
                                     extra_dir, f), f[:-3]))
    return pages, links


def render_group(name, g, funcs, sec, mapping, meanings, types, functions, extra_dir, root,
                 neighbours):
    out = page_header(name, sec.title)
    fnames = [f for f, _ in funcs]
    summary = first_sentence(g.comment) if g.comment else "undocumented"
    out += [".SH NAME", esc(", ".join(fnames)) + " \\- " + esc(summary)]

    out += [".SH SYNOPSIS", ".nf", ".B #include <cio.h>", ".PP"]
    shown = set()
    for f, proto in funcs:
        for t in re.findall(r"\bcio_[a-z0-9_]+\b", proto):
            own = any(normalize(" ".join(d)).startswith("typedef") and t in " ".join(d)
                      for d in g.decls)
            if t in types and t not in shown and not own:
                shown.add(t)
                out += synopsis_decl(types[t], functions) + [""]
    first = True
    for d in g.decls:
        text = normalize(" ".join(d))
        if not first and not (FUNC_NAME.search(text) and not text.startswith("typedef")):
            out.append("")
        out += synopsis_decl(d, functions)
        first = False
    while out[-1] == "":
        out.pop()
    out.append(".fi")

    desc, ret = split_sentences(g.comment)
    out.append(".SH DESCRIPTION")
    if g.comment:
        out += prose(desc, functions) or [".PP", "See RETURN VALUE."]
    else:
        out += [".PP", "This call has no description in the header yet."]
    if sec.text:
        out += [".SS %s" % esc(sec.title.split(" (")[0]) if "(" in sec.title else
                ".SS %s" % esc(sec.title)]
        out += prose(sec.text, functions)

    out.append(".SH RETURN VALUE")
    if ret:
        out.append(".PP")
        out += [inline(s, functions) for s in ret]
    else:
        out.append(".PP")
        out += [esc(t) for t in return_value_generic(funcs)]

    errs = errors_section("\n".join(g.comment), [sec], meanings)
    out.append(".SH ERRORS")
    if errs:
        out += errs
        out += [".PP", "Also, by the conventions of"]
    else:
        out += [".PP", "The codes DESCRIPTION and RETURN VALUE name; also, by the conventions of"]
    # Calls made for other threads are not held to the loop's thread.
    any_thread = re.search(r"from any thread", " ".join(" ".join(g.comment).split()))
    out += [".BR cio (3):",
            "\\-ENOMEM from a call that allocates, \\-CIO_EFORKED in the child of a fork" +
            ("." if any_thread else ","),
            ]
    if not any_thread:
        out.append("\\-CIO_EWRONGTHREAD in debug mode from another thread.")

    extra = read_extra(os.path.join(extra_dir, name + ".md"))
    out.append(".SH NOTES")
    rows = []
    for f in fnames:
        for row in mapping.get(f, []):
            if row not in rows:
                rows.append(row)
    if rows:
        out.append(".SS asyncio")
        for a, diff in rows:
            out.append(".PP")
            out.append(md_inline("asyncio: " + a + ".", functions))
            if diff.strip() and diff.strip() != "—":
                out.append(md_inline("Differences: " + diff, functions))
    else:
        out += [".PP", "asyncio has no call of this name; see docs/asyncio-mapping.md."]
    out += cancellation_note(g, sec)
    if "NOTES" in extra:
        out += markdown(extra.pop("NOTES"), functions, root)
    if "EXAMPLE" in extra:
        out.append(".SH EXAMPLE")
        out += markdown(extra.pop("EXAMPLE"), functions, root)
    for title, body in list(extra.items()):
        if title == "SEE ALSO":
            continue
        out.append(".SH %s" % title)
        out += markdown(body, functions, root)

    # SEE ALSO: the overview, the calls the description names, then the
    # other pages of the same section of the header.
    refs = ["cio"]
    for f in re.findall(r"\bcio_[a-z0-9_]+\b", "\n".join(g.comment)):
        if f in functions and f not in fnames and f not in refs:
            refs.append(f)
    for n in neighbours:
        if n != name and n not in refs:
            refs.append(n)
    out.append(".SH SEE ALSO")
    out += see_also(refs)
    if "SEE ALSO" in extra:
        out += markdown(extra["SEE ALSO"], functions, root)
    return out


def cancellation_note(g, sec):
    """What cancellation does to the calls of the group. The header says
    which calls suspend (its section "Suspending calls", "In a task", "From
    a task", or a -ECANCELED among the outcomes); the rule for those is the
    one of cio_task_cancel. The note claims nothing the header does not."""
    text = " ".join(g.comment + [sec.title] + sec.text)
    out = [".SS Cancellation", ".PP"]
    if re.search(r"ECANCELED|[Ss]uspend|\b[Ii]n a task|[Ff]rom a task|inside a task", text):
        out += ["A call of this page that suspends the calling task returns \\-ECANCELED",
                "when the task is cancelled while it waits (by",
                ".BR cio_task_cancel (3),",
                "a task group or a timeout scope). The request stays counted: a task",
                "that returns while requests are outstanding ends cancelled, and one",
                "that means to go on calls",
                ".BR cio_task_uncancel (3).",
                "Outside a task a suspending call returns \\-EPERM."]
    else:
        out += ["These calls never suspend the calling task, so cancelling the task",
                "does not interrupt them."]
    return out


def first_sentence(comment):
    """The NAME line's summary: the comment's first sentence, or its first
    clause when the sentence is long."""
    text = " ".join(l.strip() for l in comment if l.strip())
    m = re.match(r"^(.*?\.)(\s|$)", text)
    s = (m.group(1) if m else text).rstrip(".")
    # "Enters a group: 0, -EINVAL or -ENOMEM": the codes belong to RETURN
    # VALUE, not to the summary.
    m = re.search(r"[:;] (?=(0|1|-E|-CIO_|returns|NULL)\b)", s)
    if m and m.start() >= 12:
        s = s[:m.start()]
    if len(s) > 75:
        for sep in ("; ", ": ", " (", ", "):
            k = find_outside_parens(s, sep)
            if k >= 20:
                s = s[:k]
                break
    if len(s) > 75:
        s = s[:72].rsplit(" ", 1)[0] + "..."
    # man's NAME line continues in lower case: "cio_sleep \- waits ...".
    if len(s) > 1 and s[0].isupper() and s[1].islower():
        s = s[0].lower() + s[1:]
    return s


def find_outside_parens(s, sep):
    depth = 0
    for k in range(len(s)):
        if s[k] == "(":
            depth += 1
        elif s[k] == ")":
            depth -= 1
        elif depth == 0 and s.startswith(sep, k) and not (sep == " (" and False):
            return k
        if sep == " (" and depth == 1 and s[k] == "(" and k > 0 and s[k - 1] == " ":
            return k - 1
    return -1


def render_overview(opening, index, functions, extra_dir, root):
    out = page_header("cio", "overview")
    out += [".SH NAME", "cio \\- asyncio for C: event loop, coroutines on their own stacks, "
            "futures, cancellation, I/O"]
    out += [".SH SYNOPSIS", ".nf", ".B #include <cio.h>", ".PP",
            ".B cc prog.c $(pkg\\-config \\-\\-cflags \\-\\-libs cio)", ".fi"]
    out.append(".SH DESCRIPTION")
    out += prose(opening, functions)
    out.append(".SH PAGES")
    out += [".PP", "One page per group of calls, as the header groups them; every function",
            "has a page of its own name (a link to its group's page)."]
    for title, entries in index:
        out.append(".SS %s" % esc(title))
        for n, summary in entries:
            out += [".TP", ".BR %s (3)" % n, line_start(esc(summary))]
    extra = read_extra(os.path.join(extra_dir, "cio.md"))
    for title, body in extra.items():
        out.append(".SH %s" % title)
        out += markdown(body, functions, root)
    return out


def generate(header, mapping_path, extra_dir, outdir):
    # The source root (examples quoted by "@example" are relative to it).
    root = os.path.dirname(os.path.dirname(os.path.abspath(mapping_path)))
    pages, links = build_pages(header, mapping_path, extra_dir, root)
    man3 = os.path.join(outdir, "man3")
    os.makedirs(man3, exist_ok=True)
    # Pages of functions that were removed or renamed must not linger.
    for f in os.listdir(man3):
        if f.endswith(".3"):
            os.remove(os.path.join(man3, f))
    for name, lines in pages.items():
        with open(os.path.join(man3, name + ".3"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    for func, page in links.items():
        if func != page:
            with open(os.path.join(man3, func + ".3"), "w", encoding="utf-8") as f:
                f.write(".so man3/%s.3\n" % page)
    undocumented = undocumented_functions(header)
    for name, line in undocumented:
        print("manpages: warning: %s (include/cio.h:%d) has no comment of its own" % (name, line),
              file=sys.stderr)
    print("manpages: %d pages, %d functions" % (len(pages), len(links)))


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def undocumented_functions(header):
    _, sections = read_header(header)
    out = []
    for sec in sections:
        for g in sec.groups:
            if not any(l.strip() for l in g.comment):
                for name, _ in g.functions():
                    out.append((name, g.line))
    return out


def read_page(man3, name, hops=0):
    """(page name, text) of name's page, following one .so link."""
    path = os.path.join(man3, name + ".3")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.match(r"^\.so\s+man3/(\S+)\.3\s*$", text)
    if m:
        if hops:
            return None, None
        return read_page(man3, m.group(1), hops + 1)
    return name, text


def page_section(text, title):
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH |\Z)" % re.escape(title), text, re.S | re.M)
    return m.group(1) if m else ""


def synopsis_prototypes(text):
    """The function prototypes of a page's SYNOPSIS, as plain text."""
    syn = page_section(text, "SYNOPSIS")
    plain = []
    for line in syn.split("\n"):
        if line.startswith("."):
            plain.append("")
            continue
        plain.append(strip_roff(line))
    joined = "\n".join(plain)
    protos = []
    for stmt in re.split(r"(?<=;)", joined):
        s = normalize(stmt)
        m = re.match(r"^[a-z_][a-z0-9_ ]*[ *]+(cio_[a-z0-9_]+)\(", s)
        if m and not s.startswith("typedef"):
            protos.append((m.group(1), s))
    return protos


def check(what, header, outdir):
    man3 = os.path.join(outdir, "man3")
    names = header_functions(header)
    if not names:
        print("check: no functions found in %s" % header)
        return 2
    bad = []
    if what == "pages":
        for n in names:
            page, text = read_page(man3, n)
            if page is None:
                bad.append("%s: no page (man3/%s.3)" % (n, n))
                continue
            name_line = page_section(text, "NAME")
            if not re.search(r"\b%s\b" % n, strip_roff(name_line)):
                bad.append("%s: its page %s does not list it in NAME" % (n, page))
        if not os.path.exists(os.path.join(man3, "cio.3")):
            bad.append("cio.3: the overview page is missing")
    elif what == "synopsis":
        protos = header_prototypes(header)
        pages_seen = set()
        for n in names:
            page, text = read_page(man3, n)
            if page is None:
                bad.append("%s: no page" % n)
                continue
            pages_seen.add(page)
            found = dict(synopsis_prototypes(text))
            if n not in found:
                bad.append("%s: not in the SYNOPSIS of %s" % (n, page))
            elif found[n] != protos.get(n):
                bad.append("%s: the SYNOPSIS of %s says\n    %s\n  the header says\n    %s"
                           % (n, page, found[n], protos.get(n)))
        for page in sorted(pages_seen):
            _, text = read_page(man3, page)
            for n, _ in synopsis_prototypes(text):
                if n not in protos:
                    bad.append("%s: its SYNOPSIS declares %s, which the header does not"
                               % (page, n))
    elif what == "documented":
        for n, line in undocumented_functions(header):
            bad.append("%s (include/cio.h:%d): no comment above its declaration group; "
                       "write one (it becomes the DESCRIPTION of its page)" % (n, line))
        found = set()
        _, sections = read_header(header)
        for sec in sections:
            for g in sec.groups:
                found.update(n for n, _ in g.functions())
        for n in names:
            if n not in found:
                bad.append("%s: declared in a form the page generator does not read" % n)
    else:
        print("check: unknown check %s" % what)
        return 2
    for b in bad:
        print("FAILED: " + b)
    print("%d public functions checked (%s), %d problems" % (len(names), what, len(bad)))
    return 1 if bad else 0


def main(argv):
    if len(argv) == 6 and argv[1] == "generate":
        generate(argv[2], argv[3], argv[4], argv[5])
        return 0
    if len(argv) == 5 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
