"""Evidence under answers: verbatim supporting sentences, and figures no source holds."""

from bot.engine.evidence import (
    Reading,
    disputed_figures,
    is_refusal,
    normalize_term,
    pick_evidence,
    terms,
    unsupported_figures,
)
from retrieval.context import REFUSAL, number_sources
from retrieval.embeddings import Embedder
from retrieval.store import Hit

LEAVE = (
    "Full-time employees get 25 working days of paid annual leave per calendar year. "
    "Part-time employees get a pro-rata share.\n"
    "Unused days can be carried over until 31 March of the next year. "
    "Requests go through Tally at least two weeks ahead."
)
TRAVEL = (
    "Economy class is the default for all flights. "
    "Business class is allowed only for flights longer than 6 hours, with approval from "
    "your director."
)


def hit(doc: str, title: str, body: str, chunk: int = 0) -> Hit:
    return Hit(
        score=1.0,
        similarity=0.5,
        keyword_coverage=0.5,
        doc_id=doc,
        source="files",
        title=title,
        location=f"/kb/{doc}",
        heading=title,
        body=body,
        chunk=chunk,
    )


SOURCES = number_sources(
    [hit("leave.md", "Leave", LEAVE), hit("travel.md", "Expenses and travel", TRAVEL)]
)


def test_figures_and_words_are_compared_normalised():
    assert normalize_term("€1,200") == "1200"
    assert normalize_term("Days") == "day"
    assert "25" in terms("You get 25 days [1].")
    assert "1" not in terms("You get 25 days [1].")  # citation marks are not content


def test_the_sentence_holding_the_answer_is_quoted_verbatim():
    answer = "You get 25 working days of paid leave per year [1]."
    evidence = pick_evidence("How many vacation days do I get per year?", answer, SOURCES)
    assert evidence[0].n == 1 and evidence[0].location == "/kb/leave.md"
    assert evidence[0].text.startswith("Full-time employees get 25 working days")
    assert all(quote.text in LEAVE for quote in evidence)  # never rewritten
    assert len(evidence) <= 2


def test_the_cited_source_is_preferred_and_the_question_picks_the_second_quote():
    answer = "No. Business class is allowed only for flights longer than 6 hours [2]."
    evidence = pick_evidence("Can I expense a business class flight?", answer, SOURCES)
    assert [quote.n for quote in evidence] == [2, 2]
    assert "longer than 6 hours" in evidence[1].text  # in the source's order
    wrong = "Yes, any class is fine [2]."  # a wrong answer still shows what the source says
    quoted = " ".join(q.text for q in pick_evidence("Can I fly business class?", wrong, SOURCES))
    assert "Business class is allowed only for flights longer than 6 hours" in quoted


def test_a_sentence_copied_from_another_source_is_quoted_despite_a_wrong_citation():
    copied = "Business class is allowed only for flights longer than 6 hours [1]."  # not [2]
    support = [q for q in pick_evidence("Which class can I fly?", copied, SOURCES) if not q.focus]
    assert support and support[0].n == 2 and "longer than 6 hours" in support[0].text
    hinted = "Business class needs 25 days of notice [1]."  # [1] holds 25: the citation stands
    support = [q for q in pick_evidence("Which class can I fly?", hinted, SOURCES) if not q.focus]
    assert support and support[0].n == 1 and "25 working days" in support[0].text


def test_the_second_quote_is_the_sentence_closest_in_meaning_in_any_source(
    embedder: Embedder,
) -> None:
    """A wrong answer citing the wrong source: its quote, then what the sources do say."""
    question, answer = "Which cabin may I fly in on a nine-hour trip?", "You get 25 days [1]."
    assert [quote.n for quote in pick_evidence(question, answer, SOURCES)] == [1]
    evidence = pick_evidence(question, answer, SOURCES, closeness=embedder.closeness)
    assert [quote.n for quote in evidence] == [1, 2]
    assert evidence[1].text.startswith("Business class is allowed only for flights longer than")


def test_the_reading_made_before_the_answer_ranks_the_question_sentence_first(
    embedder: Embedder,
) -> None:
    """What steers the model while it writes, then stands under its answer."""
    question = "When may I fly business class?"
    reading = Reading(question, SOURCES, embedder.closeness)
    [first, second] = reading.focus(2)
    assert first.startswith("Business class is allowed only for flights longer than 6 hours")
    assert second in LEAVE + TRAVEL  # verbatim sentences, best first
    answer = "You get 25 days [1]."
    assert pick_evidence(question, answer, SOURCES, reading=reading) == pick_evidence(
        question, answer, SOURCES, closeness=embedder.closeness
    )
    assert Reading("zzz", SOURCES).focus() == []  # no words in common, no dense model: none
    assert Reading(question, []).focus() == []


def test_a_rare_code_of_the_question_finds_its_row(embedder: Embedder) -> None:
    """The keyword half of the second quote: an error code the answer got wrong."""
    codes = (
        "| Code | Meaning | What to do |\n|---|---|---|\n"
        "| KST-4402 | Gateway unreachable | Accept the captive portal's terms first |\n"
        "| KST-4419 | Device failed the compliance check | Update the OS, then reconnect |\n"
        "| KST-4471 | Certificate expired | Reinstall the profile |"
    )
    sources = number_sources(
        [hit("vpn.md", "VPN error codes", codes), hit("leave.md", "Leave", LEAVE)]
    )
    wrong = "KST-4419 means the gateway is unreachable: accept the captive portal's terms [1]."
    evidence = pick_evidence("KST-4419", wrong, sources, closeness=embedder.closeness)
    assert [quote.n for quote in evidence] == [1, 1]
    assert "Device failed the compliance check" in evidence[1].text


def test_rows_read_under_their_header_and_items_under_their_lead_in(embedder: Embedder):
    """A header row, a table rule or a lead-in ending in ":" states nothing by itself."""
    crews = (
        "Each crew has a lead who signs off its work.\n\n"
        "| Crew | Works on | Lead | Shift |\n|---|---|---|---|\n"
        "| Gannet | Hull repairs | Odile Varga | Early |\n"
        "| Petrel | Engine overhauls | Tomasz Lind | Late |"
    )
    storm = (
        "When a storm warning is issued:\n"
        "- move the small boats into shed B;\n"
        "- double the mooring lines of the moored yachts.\n"
        "The harbour office opens at 07:00."
    )
    sources = number_sources(
        [hit("crews.md", "Yard crews", crews), hit("storm.md", "Storms", storm)]
    )
    first = Reading("Who leads the Petrel crew?", sources, embedder.closeness).focus()
    assert first == ["| Petrel | Engine overhauls | Tomasz Lind | Late |"]
    reading = Reading("What happens to small boats in a storm?", sources, embedder.closeness)
    assert reading.focus() == ["- move the small boats into shed B;"]
    last = [s.text for s in reading.ranked[-3:]]  # what says little comes last
    assert set(last) == {
        "| Crew | Works on | Lead | Shift |",
        "|---|---|---|---|",
        "When a storm warning is issued:",
    }


def test_each_line_of_a_code_block_is_a_sentence_read_under_its_lead_in(embedder: Embedder):
    """A command is quoted alone, not the whole block run together; fences say nothing."""
    runbook = (
        "Keys last 90 days. Rotate your key like this:\n\n"
        "```bash\n"
        "tern status                  # shows the key and its expiry date\n"
        "tern keygen --rotate         # creates a new key pair\n"
        "tern connect                 # reconnects with the new key\n"
        "```\n\n"
        "The old key is revoked after 24 hours."
    )
    sources = number_sources([hit("tern.md", "Tern VPN", runbook)])
    reading = Reading("How do I reconnect after rotating my key?", sources, embedder.closeness)
    assert reading.focus() == ["tern connect                 # reconnects with the new key"]
    lines = {s.text: s for s in reading.sentences}
    assert lines["tern keygen --rotate         # creates a new key pair"].context == (
        "Rotate your key like this:"
    )
    assert lines["```bash"].says_little and lines["```"].says_little
    assert "The old key is revoked after 24 hours." in lines  # prose after the block stays apart
    answer = "Run `tern connect` [1]."
    [quote, _] = pick_evidence("How do I reconnect?", answer, sources, reading=reading)
    assert quote.text == "tern connect                 # reconnects with the new key"
    # a chunk that begins inside the block (chunking cut it) ends it at its first fence
    tail = number_sources([hit("tern.md", "Tern VPN", runbook.split("new key pair\n")[1])])
    texts = [s.text for s in Reading("reconnect", tail, embedder.closeness).sentences]
    assert texts[:2] == ["tern connect                 # reconnects with the new key", "```"]
    assert texts[2] == "The old key is revoked after 24 hours."


def test_a_long_sentence_is_quoted_around_what_matters():
    kinds = " ".join(
        f"{kind} records are kept for {n} months,"
        for n, kind in enumerate(
            ["Invoice", "Payroll", "Badge", "Camera", "Visitor", "Ticket", "Chat", "Build"], 12
        )
    )
    row = f"{kinds} and telemetry events are kept for 25 months."
    sources = number_sources([hit("retention.txt", "Retention", row)])
    [quote] = pick_evidence("How long is telemetry kept?", "25 months [1].", sources)
    assert "telemetry events are kept for 25 months" in quote.text
    assert quote.text.startswith("… ") and len(quote.text) <= 324  # verbatim, cut in front
    assert quote.text.endswith("25 months.") and quote.text[2:] in row


def test_quotes_are_whole_sentences_across_abbreviations():
    body = (
        "The Examinations Officer is Dr. Henrike Saller. Theses are handed in on ThesisDesk.\n"
        "| Sep 4 | Blocking, Act 1 | Tue/Thu | St. Anne's Hall |"
    )
    sources = number_sources([hit("theses.md", "Theses", body)])
    answer = "The Examinations Officer is Dr. Henrike Saller [1]."
    evidence = pick_evidence("Who is the Examinations Officer?", answer, sources)
    assert evidence[0].text == "The Examinations Officer is Dr. Henrike Saller."
    rows = pick_evidence("Where is blocking on Sep 4?", "At St. Anne's Hall [1].", sources)
    assert "| Sep 4 | Blocking, Act 1 | Tue/Thu | St. Anne's Hall |" in [q.text for q in rows]


def test_a_neighbouring_figure_is_disputed_by_the_question_sentence(embedder: Embedder):
    """The small model's commonest slip: the right table, the wrong row."""
    pay = (
        "Rates are reviewed every January.\n"
        "| Role | Pay |\n|---|---|\n"
        "| Primary on-call | EUR 250 per week |\n"
        "| Secondary on-call | EUR 120 per week |"
    )
    sources = number_sources([hit("oncall.md", "On-call", pay), hit("leave.md", "Leave", LEAVE)])
    question = "How much is the primary on-call paid?"
    for answer, disputed in (
        ("The primary on-call gets EUR 120 per week [1].", ["120"]),
        ("The primary on-call gets EUR 250 per week [1].", []),
        ("It is paid per week [1].", []),  # no figure stated: nothing to dispute
    ):
        evidence = pick_evidence(question, answer, sources, closeness=embedder.closeness)
        [focus] = [quote for quote in evidence if quote.focus]
        assert focus.text == "| Primary on-call | EUR 250 per week |"
        assert disputed_figures(question, answer, evidence) == disputed, answer
    made_up = "The primary on-call gets EUR 300 per week [1]."
    evidence = pick_evidence(question, made_up, sources, closeness=embedder.closeness)
    assert disputed_figures(question, made_up, evidence, ["300"]) == []  # reported already


def test_a_refusal_shows_the_closest_sentence_and_an_empty_prompt_nothing(embedder: Embedder):
    assert is_refusal(REFUSAL)
    [closest] = pick_evidence(
        "How long may I fly business?", REFUSAL, SOURCES, closeness=embedder.closeness
    )
    assert closest.focus and closest.n == 2  # what the sources say nearest to the question
    assert closest.text.startswith("Business class is allowed only for flights longer than")
    assert pick_evidence("Anything?", "Yes [1].", []) == []
    assert pick_evidence("Anything?", REFUSAL, []) == []


def test_figures_the_sources_lack_are_reported():
    made_up = "The answer is: 2 [1]. Call extension 4410."
    assert unsupported_figures("How many vacation days?", made_up, SOURCES) == ["2", "4410"]
    honest = "You get 25 working days until 31 March [1]."
    assert unsupported_figures("How many vacation days?", honest, SOURCES) == []
    assert unsupported_figures("q", REFUSAL, SOURCES) == []
    steps = "1. Open Tally.\n2. Ask two weeks ahead, by 31 March [1]."
    assert unsupported_figures("How do I book leave?", steps, SOURCES) == []
