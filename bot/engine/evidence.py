"""Evidence under an answer: the one or two sentences of its sources that support it.

Sentences are quoted verbatim from the chunks the model read: the one sharing most with the
answer (figures and codes count most) and the question, then the one the question is most
about, by meaning (the embedding model, when the caller passes it) and by its rarer words
(BM25 over the prompt's sentences), fused by rank; nothing here writes text. That ranking
(`Reading`) is made before the answer, so the model can be steered towards the question's
sentence while it writes.
Figures the answer states that none of its sources holds are reported, and so are the
answer's figures when the sentence the question is most about holds other ones, so a front
end can say so instead of showing a confident number under an unrelated quote.
"""

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from retrieval.chunking import sentences
from retrieval.context import Source

CITATION = re.compile(r"\[(\d{1,2})\]")
REFUSED = re.compile(
    r"i found nothing|don't know|do not know|not (mentioned|provided|stated|specified|"
    r"included|available|in the (sources|documents|context))|no information|"
    r"sources don't say|(cannot|can't|couldn't|could not) (find|answer)",
    re.IGNORECASE,
)
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")
_LIST_MARK = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)
QUOTE_CHARS = 320  # a longer sentence (a table row, a run-on) is cut with an ellipsis
WRONG_CITATION = 2.0  # another source's sentence must share this many times as much to be quoted
_WORD = re.compile(r"[\w€$£%]+(?:[.,:/'’-][\w]+)*")
_STOP = frozenset(
    "a an the of to in on for and or is are was were be been by with at from as it its this "
    "that these those what which who whom how do does did i you we can could my your our "
    "their they he she when where there here per if not no yes any all about into than then "
    "will would should may might must have has had get gets got me us".split()
)


@dataclass(frozen=True)
class Evidence:
    n: int  # the source's number in the prompt and in the answer's citations
    title: str
    location: str
    text: str  # verbatim from the source
    focus: bool = False  # the sentence the question is most about

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.n,
            "title": self.title,
            "location": self.location,
            "text": self.text,
            "closest_to_question": self.focus,
        }


def normalize_term(token: str) -> str:
    """'€1,200' → '1200', 'Rooms' → 'room': how figures and words are compared."""
    token = token.lower().strip("€$£%.,:/'’-")
    if any(ch.isdigit() for ch in token):
        return re.sub(r"(?<=\d)[,’'](?=\d{3}\b)", "", token)
    return token[:-1] if len(token) > 3 and token.endswith("s") else token


def terms(text: str) -> list[str]:
    """Content words and figures of a text, normalised; citation marks left out."""
    found = (normalize_term(token) for token in _WORD.findall(CITATION.sub(" ", text)))
    return [term for term in found if term and term not in _STOP]


def is_figure(term: str) -> bool:
    return any(ch.isdigit() for ch in term)


def cited(answer: str) -> set[int]:
    return {int(n) for n in CITATION.findall(answer)}


def is_refusal(answer: str) -> bool:
    """Whether the answer declines: its first sentence says the sources don't hold it.

    A refusal later on ("The fee is €20 [1]. The sources don't say whether …") leaves an
    answer, which keeps its quotes.
    """
    return bool(REFUSED.search(_FIRST_SENTENCE.split(answer.strip(), maxsplit=1)[0]))


def _score(sentence: set[str], answer: set[str], question: set[str]) -> float:
    figures = {term for term in answer if is_figure(term)}
    shared = 3.0 * len(figures & sentence) + len((answer - figures) & sentence)
    shared += 0.5 * len(question & sentence)
    return shared / math.sqrt(1 + 0.1 * len(sentence))  # a long row doesn't win on length


Closeness = Callable[[str, Sequence[str]], Sequence[float]]  # question, texts → similarity


@dataclass(frozen=True)
class _Sentence:
    order: int  # the source's place in the prompt
    position: int
    source: Source
    text: str
    heading: str
    terms: frozenset[str]
    context: str = ""  # what the sentence reads under: a row's table header, an item's lead-in
    says_little: bool = False  # a heading, a table's header or rule, a lead-in ending in ":"

    @property
    def ranked_text(self) -> str:
        """How the sentence is compared with the question: under its heading and context."""
        body = f"{self.context} {self.text}" if self.context else self.text
        return f"{self.heading}: {body}" if self.heading else body


_ITEM = re.compile(r"\s*([-*+•]|\d{1,2}[.)]|[a-z][.)])\s")
_TABLE_RULE = re.compile(r"\|?[\s:|-]+\|?")
_FENCE = re.compile(r"\s*(```|~~~)")  # a fenced code block's first or last line


def _sentences(sources: Sequence[Source]) -> list[_Sentence]:
    """The prompt's sentences, each with what it reads under (`_Sentence.context`).

    A table row is read under its table's header row ("| Lead |" makes "Kertu Mets" a
    lead), a list item under the sentence ending in ":" that introduces the list ("Before
    surgery:"), and so is each line of a fenced code block ("Rotate your key like this:").
    Those headers, lead-ins, rules and fences, and headings standing alone, state no fact by
    themselves; they say little and rank after every sentence that does.
    """
    found: list[_Sentence] = []
    seen: set[str] = set()
    for order, source in enumerate(sources):
        for hit in source.hits:
            pieces = _whole(sentences(_unwrapped(hit.body)))
            header = lead = ""
            code = _starts_in_code(hit.body)
            for position, sentence in enumerate(pieces):
                line = sentence.strip()
                words = frozenset(terms(sentence))
                context, says_little = "", False
                if _FENCE.match(line):  # a code block opens or closes; its lead-in holds
                    code, says_little = not code, True
                elif code:  # a command or a line of a file, read under the block's lead-in
                    context, says_little = lead, not words
                elif line.startswith("|"):
                    following = pieces[position + 1].strip() if position + 1 < len(pieces) else ""
                    if _TABLE_RULE.fullmatch(line):  # the rule itself
                        says_little = True
                    elif _TABLE_RULE.fullmatch(following):
                        header, says_little = line, True  # the header row above the rule
                    else:
                        context = header
                else:
                    header = ""
                    if _ITEM.match(sentence):
                        context = lead
                    else:
                        lead = ""
                    if line.endswith(":"):
                        lead, says_little = line, True
                    elif line.startswith("#") or line.isupper() or len(words) < 2:
                        says_little = True
                if sentence not in seen:  # overlapping chunks repeat sentences
                    seen.add(sentence)
                    found.append(
                        _Sentence(
                            order,
                            position,
                            source,
                            sentence,
                            hit.heading,
                            words,
                            context=context,
                            says_little=says_little,
                        )
                    )
    return found


_ABBREVIATION = re.compile(
    r"\b(Dr|Mr|Mrs|Ms|Prof|St|No|Nr|vs|approx|e\.g|i\.e|etc|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?"
    r"|Oct|Nov|Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun)\.$"
)


def _whole(pieces: list[str]) -> list[str]:
    """Pieces cut after an abbreviation ("Dr.", "St.") or inside a table row joined back."""
    whole: list[str] = []
    for piece in pieces:
        last = whole[-1] if whole else ""
        cut_row = last.startswith("|") and not last.endswith("|")
        if last and (cut_row or _ABBREVIATION.search(last)):
            whole[-1] = f"{last} {piece}"
        else:
            whole.append(piece)
    return whole


def _bm25(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    """Okapi BM25 (k1 1.2, b 0.75) of each document for the query, rarity counted among them."""
    average = sum(map(len, documents)) / len(documents) or 1.0
    frequency: dict[str, int] = {}
    for document in documents:
        for term in set(document):
            frequency[term] = frequency.get(term, 0) + 1
    rarity = {
        term: math.log(1 + (len(documents) - count + 0.5) / (count + 0.5))
        for term, count in frequency.items()
    }
    scores: list[float] = []
    for document in documents:
        score = 0.0
        for term in set(query) & set(document):
            tf = document.count(term)
            score += rarity[term] * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(document) / average))
        scores.append(score)
    return scores


def _fused(rankings: Sequence[Sequence[float]]) -> list[float]:
    """Reciprocal-rank fusion (k = 1: the top few of each ranking count most).

    Ties keep prompt order, so sentences sharing no word with the question still rank by
    where retrieval put them: counting only shared words lost quotes on all three sets.
    """
    fused = [0.0] * len(rankings[0])
    for scores in rankings:
        for rank, i in enumerate(sorted(range(len(scores)), key=lambda i: (-scores[i], i))):
            fused[i] += 1 / (1 + rank)
    return fused


class Reading:
    """The prompt's sentences, ranked by how much the question is about each.

    Two rankings are fused: closeness in meaning to the question (`closeness`, a dense
    model's similarity, when given) and BM25 on the question's words. The dense half finds
    paraphrases, the keyword half the rare names and codes, and carries languages the dense
    model reads poorly. Built once per answer: before it, the top sentences steer the model
    (`focus`); after it, they are the second quote.
    """

    def __init__(
        self, question: str, sources: Sequence[Source], closeness: Closeness | None = None
    ) -> None:
        self.sentences = _sentences(sources)
        self.ranked: list[_Sentence] = []  # best first; empty: nothing to rank them by
        if not self.sentences:
            return
        read = [s.ranked_text for s in self.sentences]
        rankings = [_bm25(terms(question), [terms(text) for text in read])]
        if closeness is not None:
            rankings.append(list(closeness(question, read)))
        if closeness is not None or any(rankings[0]):
            fused = _fused(rankings)
            says_little = [s.says_little for s in self.sentences]
            order = sorted(range(len(fused)), key=lambda i: (says_little[i], -fused[i], i))
            self.ranked = [self.sentences[i] for i in order]

    def best(self, skip: Sequence[_Sentence] = ()) -> _Sentence | None:
        """The sentence the question is most about, of those not in `skip`."""
        return next((s for s in self.ranked if s not in skip), None)

    def focus(self, limit: int = 1) -> list[str]:
        """The texts of the `limit` sentences the question is most about, best first."""
        return [s.text for s in self.ranked[:limit]]


def pick_evidence(
    question: str,
    answer: str,
    sources: Sequence[Source],
    *,
    limit: int = 2,
    closeness: Closeness | None = None,
    reading: Reading | None = None,
) -> list[Evidence]:
    """The sentence that best supports `answer`, from the sources it cites (else any), and
    the sentence of any source the question is most about (`Reading`).

    A sentence of another source wins the first place when it shares at least
    `WRONG_CITATION` times as much with the answer: the model copied it and cited the wrong
    number, and the cited source's best sentence would be beside the point.

    Under a right answer the second quote completes the support; under a wrong one it shows
    what the sources do say. Under a refusal, that sentence alone is the closest the sources
    come, so the reader can judge where the model would not. Pass the `reading` made before
    the answer to rank once.
    """
    if not sources:
        return []
    reading = reading or Reading(question, sources, closeness)
    if is_refusal(answer):
        closest = reading.best()
        return [] if closest is None else [_quote(closest, terms(question), focus=True)]
    every = reading.sentences
    numbers = cited(answer)
    wanted, asked = set(terms(answer)), set(terms(question))
    scored = [(score, s) for s in every if (score := _score(set(s.terms), wanted, asked)) > 0]
    anywhere = _best_support(scored)
    own = _best_support([c for c in scored if c[1].source.n in numbers])
    # the cited sources' sentence, unless another shares far more: the citation is wrong
    trusted = own is not None and (anywhere is None or anywhere[0] <= WRONG_CITATION * own[0])
    support = own if trusted else anywhere
    chosen = [support[1]] if support is not None else []
    focus = reading.best()
    second = reading.best(chosen) if len(chosen) < limit else None
    if second is not None:
        chosen.append(second)
    chosen.sort(key=lambda s: (s.order, s.position))
    return [_quote(s, wanted | asked, focus=s is focus) for s in chosen]


def _best_support(scored: Sequence[tuple[float, _Sentence]]) -> tuple[float, _Sentence] | None:
    """Of (score, sentence) pairs, the one sharing the most with the answer; ties go first."""
    return min(scored, key=lambda c: (-c[0], c[1].order, c[1].position)) if scored else None


def _quote(sentence: _Sentence, wanted: Collection[str], *, focus: bool) -> Evidence:
    source = sentence.source
    text = _clip(sentence.text, wanted)
    return Evidence(source.n, source.title, source.location, text, focus)


_BLOCK_START = re.compile(r"\s*([-*+|#>]|\d+[.)]\s|[a-z][.)]\s)")  # "b) " too


def _starts_in_code(body: str) -> bool:
    """Whether a chunk begins inside a code block: an odd number of fences, the first bare
    ("```", not "```bash"), as where chunking cut the block and this chunk holds its end."""
    fences = [line.strip() for line in body.splitlines() if _FENCE.match(line)]
    return len(fences) % 2 == 1 and fences[0] in {"```", "~~~"}


def _unwrapped(body: str) -> str:
    """Hard-wrapped lines joined back into their sentence; list items, rows and the lines of a
    fenced code block (each a command, or a line of a file) stay apart."""
    lines: list[str] = []
    fenced = _starts_in_code(body)
    for line in body.splitlines():
        previous = lines[-1].strip() if lines else ""
        fence = bool(_FENCE.match(line))
        stands_apart = previous.startswith(("|", "#")) or _FENCE.match(previous)
        joins = previous and not stands_apart and line.strip()
        if joins and not fenced and not fence and not _BLOCK_START.match(line):
            lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
        else:
            lines.append(line)
        fenced ^= fence
    return "\n".join(lines)


def _clip(sentence: str, wanted: Collection[str] = ()) -> str:
    """A long sentence cut to QUOTE_CHARS, around the most `wanted` terms it holds.

    A wide table row or a run-on keeps the part that matters ("… Tidewatch raw events 14
    days, aggregated metrics 25 months …"), not only its opening.
    """
    if len(sentence) <= QUOTE_CHARS:
        return sentence
    words = [(m.start(), m.end(), normalize_term(m.group())) for m in _WORD.finditer(sentence)]
    wanted = set(wanted)
    windows: list[tuple[int, int, int]] = []  # (wanted terms inside, start, end)
    for i, (begin, _, _) in enumerate(words):
        end, inside = begin, set()
        for _, word_end, term in words[i:]:
            if word_end - begin > QUOTE_CHARS:
                break  # words come in order: none further fits either
            end = word_end
            inside.add(term)
        windows.append((len(inside & wanted), begin, end))
    most = max(found for found, _, _ in windows)
    best = [window for window in windows if window[0] == most]
    _, start, end = best[len(best) // 2]  # the middle one: what matters, away from the cuts
    if not _WORD.search(sentence[end:]):
        end = len(sentence)  # only the closing stop was left out
    return ("… " if start else "") + sentence[start:end] + (" …" if end < len(sentence) else "")


def _stated_figures(answer: str) -> dict[str, str]:
    """The figures and codes an answer states: normalised term → as written."""
    stated: dict[str, str] = {}
    text = _LIST_MARK.sub("", CITATION.sub(" ", answer))  # "1." of a list is no figure
    for token in _WORD.findall(text):
        if is_figure(term := normalize_term(token)):
            stated.setdefault(term, token.strip(".,:"))
    return stated


def unsupported_figures(question: str, answer: str, sources: Sequence[Source]) -> list[str]:
    """Figures and codes in the answer that neither its sources nor the question hold."""
    if is_refusal(answer):
        return []
    known = set(terms(question))
    for source in sources:
        known.update(terms(source.text))
    return [token for term, token in _stated_figures(answer).items() if term not in known]


def disputed_figures(
    question: str, answer: str, evidence: Sequence[Evidence], unsupported: Sequence[str] = ()
) -> list[str]:
    """The answer's figures, when the sentence the question is most about holds other ones.

    The small model's commonest slip is a neighbouring figure of the right passage (the
    secondary on-call's rate for the primary's): the sources hold the figure, so it is not
    unsupported, but the sentence closest to the question says something else. Figures taken
    from the question, and those no source holds (`unsupported_figures`), are left out.
    """
    focus = next((quote for quote in evidence if quote.focus), None)
    if focus is None or is_refusal(answer):
        return []
    held = {term for term in terms(focus.text) if is_figure(term)}
    asked = set(terms(question))
    stated = {
        term: token
        for term, token in _stated_figures(answer).items()
        if term not in asked and token not in unsupported
    }
    if not held or not stated or held & stated.keys():
        return []
    return list(stated.values())
