"""Pure-Python port of the tokenization the COCO caption evaluation runs (no Java).

coco-caption (and ``pycocoevalcap``) writes the captions of one call into a file, one a line, pipes it through
Stanford CoreNLP 3.4.1's ``PTBTokenizer -preserveLines -lowerCase`` and then drops the tokens in ``PUNCTUATIONS``.
This module is a longest-match lexer with the rules of that version's ``PTBLexer.flex`` that matter for English
text: contractions (``can't`` -> ``ca n't``, ``it's`` -> ``it 's``), abbreviations that keep their period (``mr.``,
``u.s.``, ``jan.``, ``ca. 1900``; the flex file's lists), numbers, phone numbers, fractions, URLs, hyphenated words,
quotes (to LaTeX style), brackets (``(`` -> ``-LRB-``), dashes and ellipses. Its output was checked token for token
against the jar that ``pycocoevalcap`` ships, on files of generated captions.

One quirk is kept on purpose: ``PUNCTUATIONS`` holds ``-LRB-`` in upper case while the tokens are lowercased
first, so ``-lrb-``/``-rrb-`` survive in coco-caption's output, and so they do here.

A caption's last token can depend on the line after it in that file. When the next line opens with a sentence
starter ("A", "The", "There", ... ``_STARTERS``; the first letter a capital), an acronym before the final period
gets an extra ``.`` token (``u.s.`` ``.``) and a single letter is split from it (``the letter a.``: ``a`` ``.``);
otherwise each is one token, ``u.s.``, ``a.`` (which the punctuation filter keeps). ``ca.``, ``no.``, ``fig.``
keep their period before a number, the next line's first one too, and ``jan.``, ``etc.`` get an extra ``.`` before
a capital or at the end of the file. So `ptb_tokens` and `tokenize` take the next line as ``following`` (by default
"A a", the usual COCO caption opening; None: the end of the file), and `tokenize_lines` tokenizes captions as one
such file, as coco-caption does (the caption metrics use it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

# coco-caption's list, verbatim (pycocoevalcap/tokenizer/ptbtokenizer.py)
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_NUMERIC = "\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff\u2776-\u2793"
_LET = rf"[^\W\d_{_NUMERIC}]"  # a letter in any script (Python's \w also has 2, ½, Ⅻ)
_LD = rf"[^\W_{_NUMERIC}]"  # a letter or a digit
_APOS = r"(?:['\u0092\u2019]|&apos;)"
_APOSX = r"(?:['\u0092\u2019\u0091\u2018\u201B]|&apos;)"
_WORD = rf"{_LET}{_LD}*(?:[.!?]{_LET}{_LD}*)*"
_REDAUX = rf"{_APOS}(?i:[msd]|re|ve|ll)"
_SREDAUX = rf"(?i:n){_APOSX}(?i:t)"
_SPACE = r"[ \t\u00A0\u2000-\u200A\u3000]"
_SPACENL = r"[ \t\u00A0\u2000-\u200A\u3000\r\n\u2028\u2029\u000B\u000C\u0085]"
_SGML = r"</?[A-Za-z!][^>]*>"
# acronyms; the named ones (Canada-U.S, U.S.-U.K) come first, as a regex takes the first alternative that matches
_ACRO_NAMED = r"(?i:(?:canada|sino|korean|eu|japan|non)-u\.s|u\.s\.-(?:u\.k|u\.s\.s\.r))"
_ACRO = rf"(?:{_ACRO_NAMED}|[A-Za-z](?:\.[A-Za-z])+)"
_HYPHEN = r"[-_\u058A\u2010\u2011]"
_THING_PART = rf"(?:[dDoOlL]{_APOSX}{_LD})?{_LD}+"
_THING = rf"{_THING_PART}(?:{_HYPHEN}{_THING_PART})*"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,]*(?:-(?:{_ACRO}\.|[A-Za-z0-9]+))+"
_THINGA = r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+"
_INSENTP = r"[,;:]"

# Abbreviations: the lists of 3.4.1's PTBLexer.flex (git tag v3.4.1 of stanfordnlp/CoreNLP, the jar's source).
# JFlex runs it %caseless: literals match in any case, [X] classes only as written.
_ABMONTH = r"(?i:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)"
_ABDAYS = r"(?i:mon|tues?|wed|thurs|thu|fri)"
_ABSTATE = (
    r"(?:(?i:ala|ariz|calif|colo|conn|ct|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn"
    r"|va|vt|wisc?|wyo)|[A](?i:z|rk)|[D](?i:el)|[I](?i:ll)|[L](?i:a)|[M](?i:ass|iss)|[O](?i:re)|[P](?i:a)"
    r"|[T](?i:ex)|[W](?i:ash))"
)
_ABCOMP = r"(?:(?i:inc|cos?|corp|ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys)|(?i:pp?t)[ye](?i:s?))"
# sentence-final candidates: an extra "." token follows them before a capital or the end of the line
_ABBREV1 = (
    rf"(?:{_ABMONTH}|{_ABDAYS}|{_ABSTATE}|{_ABCOMP}|(?i:tel|est|ext|sq|jr|sr|bros|ed\.d|ph\.d|blvd|rd|esq"
    r"|etc|al|seq|bldg))\."
)
_ABTITLE = (
    r"(?:(?i:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|mt|capt"
    r"|ste?|ave|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|ft|adj|adv|asst|assoc|ens|insp|mlle|mme|msgr"
    r"|sfc|ph|dept)|[M](?i:iss))"
)
_ABBREV4 = [
    _ACRO,
    _ABTITLE,
    r"(?:(?i:vs|alex|wm|jos|cie|a\.k\.a|cf|treas|invt|elec|natl)|(?i:m)[ft](?i:g))",
    "[A-Za-z]",
]
_ABNUM = r"(?i:ca|figs?|prop|nos?|art|bldg|pp|op)"  # ABBREV3: keep their period only before a number
# words after which an acronym ends a sentence; the first letter is case-sensitive, the rest is not
_STARTERS = (
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More Mr. Ms. "
    "Now Once One Other Our She Since So Some Such That The Their Then There These They This We When While What Yet "
    "You"
)
_SENT_STARTERS = (
    "(?:" + "|".join([f"[{w[0]}](?i:{re.escape(w[1:])})" for w in _STARTERS.split(" ")] + [_SGML]) + ")"
)
_APOWORDS = [
    rf"{_APOS}(?i:n){_APOS}?",
    rf"[lLdDjJ]{_APOS}",
    rf"{_APOS}(?i:em)",
    rf"[A-HJ-XZn]{_APOSX}{_LET}{{2}}{_LET}*",
    rf"{_APOS}[2-9]0(?i:s)",
    rf"{_APOS}(?i:till?)",
    rf"{_LET}+[aeiouyAEIOUY]{_APOSX}[aeiouA-Z]{_LET}*",
    rf"{_APOS}(?i:cause)",
    r"(?i:c'mon)",
]
_FULLURL = r"(?i:https?)://[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]"
_LIKELYURL = (
    r"(?:(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+"
    r"(?i:com|net|org|edu)))(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?"
)
_EMAIL = r"[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}\u00A0]*@(?:[^ \t\n\f\r\"<>|(){}.\u00A0]+\.)*[^ \t\n\f\r\"<>|(){}.\u00A0]+"
_PHONE = [
    r"(?:\([0-9]{2,3}\)[ \u00A0]?|(?:\+\+?)?(?:[0-9]{2,4}[- \u00A0])?[0-9]{2,4}[- \u00A0])[0-9]{3,4}[- \u00A0]?[0-9]{3,5}",
    r"(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}",
]
_LDOTS = r"\.{3,5}|(?:\.[ \u00A0]){2,4}\.|[\u0085\u2026]"
_QUOTES = [
    _APOS,
    "''",
    "[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091-\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{1,2}",
]
_MISC = (
    "[\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00ba\u00d7\u00f7\u0387\u2020-\u2023\u2032-\u2038"
    "\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u22ff\u2300-\u23ff\u2600-\u26ff"
    "\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3"}
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}


def _latex_quotes(text: str, left: bool) -> str:
    text = re.sub(r"&apos;|'", "`" if left else "'", text)
    text = re.sub(r"\"|&quot;", "``" if left else "''", text)
    text = re.sub("[\u0091\u2018\u201b\u2039]", "`", text)
    text = re.sub("[\u0092\u2019\u203a]", "'", text)
    text = re.sub("[\u0093\u201c\u00ab]", "``", text)
    return re.sub("[\u0094\u201d\u00bb]", "''", text)


def _currency(text: str) -> str:
    text = text.replace("\u00a2", "cents").replace("\u00a3", "#")
    return re.sub("[\u0080\u00a4\u20a0\u20ac]", "$", text)


def _keep(text: str) -> str:
    return text


def _hyphens(text: str) -> str:
    return "--" if 3 <= len(text) <= 4 else text


# One rule: (pattern, trailing context or None, what the token becomes, consume the whole match or all but its
# last character). Like JFlex, the longest match at a position wins (trailing context counted), the first rule on
# ties; a pattern's alternatives are separate rules here, since a Python regex stops at its first alternative.
_Rule = tuple[str, str | None, Callable[[str], str], bool]
_RULES_SRC: list[_Rule] = []


def _rule(
    patterns: str | list[str],
    context: str | None = None,
    make: Callable[[str], str] | None = None,
    whole: bool = True,
) -> None:
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        _RULES_SRC.append((pattern, context, make or _keep, whole))


def _brackets(text: str) -> str:
    return re.sub(r"[()\[\]{}]", lambda m: _BRACKETS[m.group()], text)


_rule([r"(?i:c)[+][+]", r"(?i:c|f)#"])
_rule(r"(?i:can)", r"(?i:not)")
_rule(r"(?i:gon|wan)", rf"(?i:na)(?!{_LET})")
_rule(r"(?i:got)", rf"(?i:ta)(?!{_LET})")
_rule(r"(?i:lem|gim)", rf"(?i:me)(?!{_LET})")
_rule(rf"{_APOS}(?i:t)", rf"(?i:is|was)(?!{_LET})")
_rule(_SGML)
_rule([r"&(?:MD|mdash|ndash);", "[\u0096\u0097\u2013\u2014\u2015]"], make=lambda t: "--")
_rule(r"&amp;", make=lambda t: "&")
_rule(r"&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);")
_rule(_WORD, _REDAUX)
_rule(r"[A-Za-z]*[A-MO-Za-mo-z]", _SREDAUX)
_rule(_WORD)
_rule(_APOWORDS)
_rule(rf"[yY]{_APOS}", _LET)
_rule([rf"#{_LET}+", r"@[a-zA-Z_][a-zA-Z_0-9]*"])
_rule([r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]](?![A-Za-z0-9])", r"\^_\^"], make=_brackets)
_rule([_FULLURL, _LIKELYURL, _EMAIL])
_rule(_REDAUX, r"[^A-Za-z]", lambda t: _latex_quotes(t, False))
_rule(_SREDAUX, make=lambda t: _latex_quotes(t, False))
_rule(r"\d{1,2}[-/]\d{1,2}[-/]\d{2,4}")
_rule([r"[-+]?\d+", r"[-+]?\d*(?:[.:,]\d+)+"])
_rule(r"(?:\d{1,4}[- \u00A0])?\d{1,4}(?:\\?/|\u2044)\d{1,4}", make=lambda t: t.replace(" ", "\u00a0"))
_rule("[\u00bc\u00bd\u00be\u2153-\u215e]", make=lambda t: _FRACTIONS.get(t, t))
_rule(
    [r"(?i:-(?:rrb|lrb|rcb|lcb|rsb|lsb)-|c\.d\.s|pro-|anti-|s(?:&|&amp;)p-500|s(?:&|&amp;)ls)"]
    + [rf"(?i:cap){_APOS}(?i:n)", rf"(?i:c){_APOS}(?i:est)"],
    make=lambda t: t.replace("&amp;", "&"),
)
_rule(r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}")
_rule([r"[A-Z]*\$", "#"])
_rule(
    "[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]", make=_currency
)
_STARTS_SENTENCE = rf"{_SPACENL}+{_SENT_STARTERS}{_SPACENL}"
_rule(rf"{_ACRO}\.", _STARTS_SENTENCE, whole=False)  # "U.S. The": "u.s." then "."
_rule(_ABBREV1, rf"{_SPACENL}(?:{_SPACENL}|[A-Z]|{_SGML})", whole=False)  # "Jan. The": "jan." then "."
_rule(rf"{_ABNUM}\.", rf"{_SPACENL}?\d")  # "No. 5", "ca. 1900"
_rule(r"(?i:pt[ey]|co)\.", rf"{_SPACE}(?i:ltd|lim)")  # "Pty. Ltd."
_rule(_ABBREV1, r"(?![\s\S]{2})", whole=False)  # "etc." at the end of the file: "etc." then "."
_rule(_ABBREV1)
_rule(r"[A-Za-z]", rf"\.{_STARTS_SENTENCE}")  # "x. The": "x" then "."
_rule([rf"{a}\." for a in _ABBREV4])
_rule(_ABBREV4, _SPACE)
_rule(_ACRO, _SPACENL)
_rule(rf"{_APOS}[0-9][0-9]", _SPACENL)
_rule(rf"{_WORD}\.", _INSENTP)  # "etc.," keeps its period before , ; :
_rule(_PHONE, make=lambda t: _brackets(t.replace(" ", "\u00a0")))
_rule(r"\"|&quot;", r"[A-Za-z0-9$]", lambda t: "``")
_rule(r"\"|&quot;", make=lambda t: "''")
_rule([r"\+|[%&\u2030\u2031]|~|\^|\||\\|\x7f", r"<+", r">+"])
_rule(r"[()\[\]{}]", make=_brackets)
_rule(r"-+", make=_hyphens)
_rule(_LDOTS, make=lambda t: "...")
_rule([r"@+", r"#+", r"_+", r"\*+", r"(?:\\\*){1,3}", _INSENTP, r"[?!]+", "[.\u00a1\u00bf]", "=", "/"])
for _thing in (_HTHING, _THING, _THINGA):
    _rule(rf"{_thing}\.", _INSENTP, lambda t: t.replace("&amp;", "&"))
    _rule(_thing, make=lambda t: t.replace("&amp;", "&"))
_rule(r"'", r"[A-Za-z][^ \t\n\r\u00A0]", lambda t: _latex_quotes(t, True))  # opening quote
_rule(_REDAUX, make=lambda t: _latex_quotes(t, False))
_rule(_QUOTES, make=lambda t: _latex_quotes(t, False))
_rule(_MISC)
_RULES = [
    (re.compile(p if c is None else f"(?P<m>{p})(?=(?P<t>{c}))"), c is not None, make, whole)
    for p, c, make, whole in _RULES_SRC
]
_SKIP = re.compile(rf"(?:{_SPACENL}|[\u200B\u200E\u200F\uFEFF\x00])+")
# A plain word or number before a space (or "," ";" ":" and a space): no rule can match more than it.
_PLAIN = re.compile(r"(?:[A-Za-z]+(?=[,;:]?[ \t\n])|\d+(?=[ \t\n](?!\d)))")
_PLAIN_SPLIT = re.compile(r"(?i:cannot|gonna|wanna|gotta|lemme|gimme)")
NEXT_CAPTION = "A a"  # the line after a caption in coco-caption's file, most of the time


def _line(caption: str) -> str:
    return caption.replace("\n", " ")  # as coco-caption writes it


def ptb_tokens(text: str, following: str | None = NEXT_CAPTION) -> list[str]:
    """The tokens Stanford's PTBTokenizer (3.4.1, ``-preserveLines -lowerCase``) gives for one caption line of
    coco-caption's file, where `following` is the next line (None: this line ends the file)."""
    text = _line(text).replace("\u00ad", "")
    end = len(text)
    if following is not None:
        text += "\n" + _line(following)
    tokens: list[str] = []
    pos = 0
    while pos < end:
        skip = _SKIP.match(text, pos)
        if skip:
            pos = skip.end()
            continue
        plain = _PLAIN.match(text, pos)
        if plain and not _PLAIN_SPLIT.fullmatch(plain.group()):
            tokens.append(plain.group().lower())
            pos = plain.end()
            continue
        best, best_len = None, 0
        for pattern, has_context, make, whole in _RULES:
            m = pattern.match(text, pos)
            if m is None:
                continue
            main = m.group("m") if has_context else m.group()
            total = len(main) + (len(m.group("t")) if has_context else 0)
            if total > best_len:
                best, best_len = (main, make, whole), total
        if best is None:  # untokenizable character: PTBTokenizer deletes it (with a warning)
            pos += 1
            continue
        main, make, whole = best
        tokens.append(make(main).lower())
        pos += len(main) if whole else len(main) - 1
    return tokens


@lru_cache(maxsize=1 << 16)
def _tokenize(text: str, following: str | None) -> tuple[str, ...]:
    return tuple(t for t in ptb_tokens(text, following) if t not in PUNCTUATIONS)


def tokenize(text: str, following: str | None = NEXT_CAPTION) -> list[str]:
    """coco-caption's tokenization of one caption: PTB tokens, lowercased, minus its punctuation list (`following`:
    the next caption in its file, as for `ptb_tokens`).

    ``tokenize("A man's (big) dog, can't run!")`` -> ``['a', 'man', "'s", '-lrb-', 'big', '-rrb-', 'dog', 'ca',
    "n't", 'run']``. Results of recent calls are cached (references are tokenized at every evaluation).
    """
    return list(_tokenize(text, following))


def tokenize_lines(captions: Sequence[str]) -> list[list[str]]:
    """`tokenize` of each caption as coco-caption's ``PTBTokenizer.tokenize`` does it: all of them in one file, one a
    line, in this order, each followed by the next (the last one by the end of the file)."""
    return [tokenize(c, captions[i + 1] if i + 1 < len(captions) else None) for i, c in enumerate(captions)]
