"""The fine-tune dataset builder, on real files: validation, feedback, dedupe, split, atomicity."""

import hashlib
import json
from pathlib import Path

import pytest

import finetune.dataset as dataset
from finetune.dataset import (
    DatasetError,
    Feedback,
    build_dataset,
    load_manifest,
    read_examples,
)
from retrieval.context import SYSTEM_PROMPT
from retrieval.errors import AjusteError
from retrieval.packaged import sha256_file


def write_lines(path: Path, *lines: object) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def qa(question: str, answer: str, **extra: str) -> dict[str, str]:
    return {"question": question, "answer": answer, **extra}


def chat(*turns: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def vote(answer_id: str, vote: int, user: str, *, question: str = "", at: float = 0.0) -> Feedback:
    question = question or f"question {answer_id}"
    return Feedback(answer_id, question, f"answer {answer_id}", vote, user, at)


def many(path: Path, count: int) -> Path:
    return write_lines(path, *(qa(f"Question {i}?", f"Answer {i}.") for i in range(count)))


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_both_line_shapes_become_chat_examples(tmp_path: Path) -> None:
    curated = write_lines(
        tmp_path / "curated.jsonl",
        qa("How do I deploy?", "Run make deploy."),
        "",
        qa("Who is on call?", "See #oncall.", system="Be brief."),
        chat(
            ("system", "Be kind."),
            ("user", "Hi"),
            ("assistant", "Hello!"),
            ("user", "Bye"),
            ("assistant", "See you."),
        ),
    )
    summary = build_dataset([curated], [], tmp_path / "out", system="You are Ajuste.", seed=1)
    examples = read_examples(tmp_path / "out" / "train.jsonl")
    examples += read_examples(tmp_path / "out" / "eval.jsonl")
    assert (summary.curated, summary.train, summary.eval, summary.problems) == (3, 2, 1, [])
    by_question = {next(m["content"] for m in e if m["role"] == "user"): e for e in examples}
    assert by_question["How do I deploy?"] == [
        {"role": "system", "content": "You are Ajuste."},
        {"role": "user", "content": "How do I deploy?"},
        {"role": "assistant", "content": "Run make deploy."},
    ]
    assert by_question["Who is on call?"][0] == {"role": "system", "content": "Be brief."}
    assert by_question["Hi"][0]["content"] == "Be kind." and len(by_question["Hi"]) == 5
    assert "2 train and 1 eval examples" in str(summary)


def test_feedback_and_curated_examples_keep_their_sources(tmp_path: Path) -> None:
    """A 👍 answer trains in the prompt it was served: numbered sources, then the question."""
    served = [
        {"n": 1, "title": "Leave", "location": "/kb/leave.md", "text": "You get 25 days."},
        {"n": 2, "title": "Travel", "location": "/kb/travel.md", "text": "Economy only."},
    ]
    votes = [
        Feedback("a1", "How many days?", "25 days [1].", 1, "U1", 1.0, tuple(served)),
        vote("a2", 1, "U1", question="An old answer without sources?"),
    ]
    curated = write_lines(
        tmp_path / "curated.jsonl",
        qa("Business class?", "No [1].") | {"sources": [{"title": "Travel", "text": "Economy."}]},
    )
    build_dataset([curated], votes, tmp_path / "out", eval_fraction=0.3, seed=3)
    examples = read_examples(tmp_path / "out" / "train.jsonl")
    examples += read_examples(tmp_path / "out" / "eval.jsonl")
    prompts = {e[-1]["content"]: e[:-1] for e in examples}
    grounded = prompts["25 days [1]."]
    assert grounded[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert grounded[1]["content"] == (
        "Sources:\n\n[1] Leave\nYou get 25 days.\n\n[2] Travel\nEconomy only."
        "\n\nQuestion: How many days?"
    )
    assert prompts["answer a2"] == [{"role": "user", "content": "An old answer without sources?"}]
    assert prompts["No [1]."][1]["content"].startswith("Sources:\n\n[1] Travel\nEconomy.")


BAD_LINES = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", 'expected an object with "messages", or "question" and "answer"'),
    (qa("q", "a", sytem="x"), "unknown key(s) sytem"),
    ({"question": "q", "answer": "a", "sources": "x"}, '"sources" must be a non-empty list'),
    ({"question": "q", "answer": "a", "sources": [{"title": "t"}]}, "source 1 must be an"),
    (chat(("user", "q"), ("bot", "a")), "message 2: unknown role 'bot'"),
    (chat(("user", "q"), ("assistant", "  ")), "message 2: empty content"),
    (chat(("user", "q"), ("assistant", "a"), ("user", "more?")), "does not end with an assistant"),
    (
        chat(("user", "q"), ("system", "s"), ("assistant", "a")),
        "message 2: a system message may only come first",
    ),
    (chat(("system", "s"), ("assistant", "a")), "no user message"),
    ({"messages": []}, '"messages" must be a non-empty list'),
    (
        {"messages": [{"role": "user"}]},
        'message 1 must be an object with just "role" and "content"',
    ),
    (qa("", "a"), '"question": empty content'),
    ({"question": "q"}, '"answer": content must be a string'),
    ({"messages": [{"role": "user", "content": 3}]}, "message 1: content must be a string"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_each_bad_line_is_reported_with_file_and_line(
    tmp_path: Path, line: object, reason: str
) -> None:
    curated = write_lines(tmp_path / "c.jsonl", qa("fine", "ok"), "", line)
    with pytest.raises(DatasetError) as caught:
        build_dataset([curated], [], tmp_path / "out")
    message = str(caught.value)
    assert f"{curated}:3: {reason}" in message, message
    assert "--skip-bad" in message and "1 problem(s)" in message
    assert isinstance(caught.value, AjusteError) and not (tmp_path / "out").exists()


def test_unreadable_inputs_are_problems_too(tmp_path: Path) -> None:
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(json.dumps(qa("ok", "fine")).encode() + b'\n{"question": "caf\xe9"}\n')
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(DatasetError) as caught:
        build_dataset([binary, missing, tmp_path], [], tmp_path / "out")
    message = str(caught.value)
    assert f"{binary}:2: not UTF-8 text" in message
    assert f"{missing}: file not found" in message
    assert f"{tmp_path}: cannot read (Is a directory)" in message


def test_a_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    curated = tmp_path / "bom.jsonl"
    curated.write_bytes(b"\xef\xbb\xbf" + json.dumps(qa("a", "b")).encode() + b"\r\n")
    assert build_dataset([curated], [], tmp_path / "out").curated == 1


def test_only_twenty_problems_are_listed(tmp_path: Path) -> None:
    curated = write_lines(tmp_path / "c.jsonl", qa("q", "a"), *["oops"] * 25)
    with pytest.raises(DatasetError) as caught:
        build_dataset([curated], [], tmp_path / "out")
    message = str(caught.value)
    assert f"{curated}:21:" in message and f"{curated}:22:" not in message
    assert "… and 5 more" in message and "25 problem(s)" in message


def test_skip_bad_leaves_bad_lines_out_and_lists_them(tmp_path: Path) -> None:
    curated = write_lines(tmp_path / "c.jsonl", qa("q1", "a1"), "{", qa("q2", "a2"))
    missing = tmp_path / "nope.jsonl"
    feedback = [vote("x", 0, "ann")]
    summary = build_dataset([curated, missing], feedback, tmp_path / "out", skip_bad=True)
    assert summary.problems == [
        f"{curated}:2: invalid JSON (Expecting property name enclosed in double quotes, column 2)",
        f"{missing}: file not found",
        "feedback x: vote must be +1 or -1, not 0",
    ]
    assert (summary.curated, summary.skipped, summary.train + summary.eval) == (2, 3, 2)
    assert "3 bad lines skipped:" in str(summary) and f"{missing}: file not found" in str(summary)
    manifest = load_manifest(tmp_path / "out")
    assert manifest["counts"]["skipped"] == 3  # type: ignore[index]
    assert manifest["inputs"] == [
        {"path": str(curated), "sha256": sha256_file(curated)},
        {"path": str(missing), "sha256": None},
    ]


def test_votes_decide_between_training_rejection_and_neither(tmp_path: Path) -> None:
    curated = write_lines(tmp_path / "c.jsonl", qa("How do I  RESET my password?", "Use /reset."))
    feedback = [
        # a: 2 up, 1 down → trained on
        vote("a", 1, "ann", at=1),
        vote("a", 1, "bob", at=2),
        vote("a", -1, "cy", at=3),
        # b: mostly down, same question as the curated pair → rejected with chosen
        vote("b", -1, "ann", question="how do i reset my password?", at=4),
        vote("b", -1, "bob", question="how do i reset my password?", at=5),
        # c: down, no approved answer anywhere → chosen is null
        vote("c", -1, "ann", at=6),
        # d: tie → left out
        vote("d", 1, "ann", at=7),
        vote("d", -1, "bob", at=8),
        # e: bob changed his mind; only his latest vote counts → 1 up, 1 down → tie
        vote("e", 1, "ann", at=9),
        vote("e", 1, "bob", at=10),
        vote("e", -1, "bob", at=11),
    ]
    out = tmp_path / "out"
    summary = build_dataset([curated], feedback, out, system="Sys")
    assert (summary.feedback_approved, summary.feedback_rejected, summary.ties) == (1, 2, 2)
    trained = read_examples(out / "train.jsonl") + read_examples(out / "eval.jsonl")
    answers = {example[-1]["content"] for example in trained}
    assert answers == {"Use /reset.", "answer a"}
    assert jsonl(out / "rejected.jsonl") == [
        {
            "prompt": [
                {"role": "system", "content": "Sys"},
                {"role": "user", "content": "how do i reset my password?"},
            ],
            "rejected": "answer b",
            "chosen": "Use /reset.",
        },
        {
            "prompt": [
                {"role": "system", "content": "Sys"},
                {"role": "user", "content": "question c"},
            ],
            "rejected": "answer c",
            "chosen": None,
        },
    ]
    counts = load_manifest(out)["counts"]
    assert counts == {
        "curated": 1, "feedback_approved": 1, "feedback_rejected": 2, "ties": 2,
        "duplicates": 0, "train": 1, "eval": 1, "skipped": 0,
    }  # fmt: skip


def test_a_downvoted_answer_gets_an_approved_feedback_answer_as_chosen(tmp_path: Path) -> None:
    feedback = [
        vote("good", 1, "ann", question="Where are the docs?"),
        vote("bad", -1, "ann", question="where are  the docs?"),
    ]
    build_dataset([], feedback, tmp_path / "out")
    [pair] = jsonl(tmp_path / "out" / "rejected.jsonl")
    assert (pair["rejected"], pair["chosen"]) == ("answer bad", "answer good")
    assert pair["prompt"] == [{"role": "user", "content": "where are  the docs?"}]


def test_duplicates_are_counted_and_the_first_is_kept(tmp_path: Path) -> None:
    first = write_lines(
        tmp_path / "a.jsonl",
        qa("What is Ajuste?", "A Slack assistant."),
        chat(("user", "what  is ajuste?"), ("assistant", "a slack\nassistant.")),
    )
    second = write_lines(tmp_path / "b.jsonl", qa("WHAT IS AJUSTE?", "A Slack assistant. "))
    feedback = [vote("x", 1, "ann", question="What is Ajuste?")]
    different = write_lines(tmp_path / "c.jsonl", qa("What is Ajuste?", "Something else."))
    summary = build_dataset([first, second, different], feedback, tmp_path / "out")
    assert (summary.curated, summary.feedback_approved, summary.duplicates) == (4, 1, 2)
    kept = read_examples(tmp_path / "out" / "train.jsonl")
    kept += read_examples(tmp_path / "out" / "eval.jsonl")
    assert sorted(e[-1]["content"] for e in kept) == [
        "A Slack assistant.", "Something else.", "answer x",
    ]  # fmt: skip


def test_split_is_seeded_sized_and_keeps_paraphrases_together(tmp_path: Path) -> None:
    curated = many(tmp_path / "c.jsonl", 40)

    def split(seed: int, name: str) -> tuple[list[str], list[str]]:
        build_dataset([curated], [], tmp_path / name, seed=seed, eval_fraction=0.25)
        return tuple(  # type: ignore[return-value]
            [e[1]["content"] for e in read_examples(tmp_path / name / f"{part}.jsonl")]
            for part in ("train", "eval")
        )

    first, again, other = split(7, "one"), split(7, "two"), split(8, "three")
    assert first == again and first != other
    assert (len(first[0]), len(first[1])) == (30, 10)
    assert load_manifest(tmp_path / "one")["sha256"] == load_manifest(tmp_path / "two")["sha256"]

    paraphrases = write_lines(
        tmp_path / "p.jsonl",
        *(qa(f"Question {i}?", f"Answer {i}.") for i in range(10)),
        *(qa(f"question  {i}?", f"Reworded answer {i}.") for i in range(10)),
    )
    build_dataset([paraphrases], [], tmp_path / "para", eval_fraction=0.2)
    sides = {
        part: {e[0]["content"].lower().replace("  ", " ") for e in read_examples(path)}
        for part in ("train", "eval")
        if (path := tmp_path / "para" / f"{part}.jsonl")
    }
    assert len(sides["eval"]) == 2 and not sides["train"] & sides["eval"]


def test_tiny_datasets_keep_one_train_and_one_eval_example(tmp_path: Path) -> None:
    one = build_dataset([many(tmp_path / "1.jsonl", 1)], [], tmp_path / "one")
    two = build_dataset([many(tmp_path / "2.jsonl", 2)], [], tmp_path / "two", eval_fraction=0.9)
    same = write_lines(tmp_path / "s.jsonl", qa("Same?", "a"), qa("same?", "b"), qa("SAME?", "c"))
    grouped = build_dataset([same], [], tmp_path / "same")
    assert (one.train, one.eval, two.train, two.eval) == (1, 0, 1, 1)
    assert (grouped.train, grouped.eval) == (2, 1)
    assert read_examples(tmp_path / "one" / "eval.jsonl") == []


def test_manifest_records_inputs_and_a_data_hash(tmp_path: Path) -> None:
    curated = many(tmp_path / "c.jsonl", 5)
    summary = build_dataset([curated], [], tmp_path / "out", seed=3)
    manifest = load_manifest(tmp_path / "out")
    train = hashlib.sha256((tmp_path / "out" / "train.jsonl").read_bytes()).hexdigest()
    evaluation = sha256_file(tmp_path / "out" / "eval.jsonl")
    assert manifest["sha256"] == summary.sha256
    assert summary.sha256 == hashlib.sha256(f"{train}\n{evaluation}\n".encode()).hexdigest()
    assert manifest["inputs"] == [{"path": str(curated), "sha256": sha256_file(curated)}]
    assert (manifest["seed"], manifest["eval_fraction"]) == (3, 0.1)
    assert str(manifest["created"]).endswith("+00:00")

    write_lines(curated, *(qa(f"Question {i}?", f"Answer {i}!") for i in range(5)))
    changed = build_dataset([curated], [], tmp_path / "out", seed=3)
    assert changed.sha256 != summary.sha256
    with_feedback = build_dataset([curated], [vote("z", 1, "ann")], tmp_path / "out", seed=3)
    assert with_feedback.sha256 not in (summary.sha256, changed.sha256)


def test_an_existing_dataset_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset([many(tmp_path / "c.jsonl", 5)], [], out)
    (out / "stale.txt").write_text("from an older build")
    build_dataset([many(tmp_path / "d.jsonl", 3)], [], out)
    assert sorted(p.name for p in out.iterdir()) == [
        "eval.jsonl", "manifest.json", "rejected.jsonl", "train.jsonl",
    ]  # fmt: skip
    assert load_manifest(out)["counts"]["curated"] == 3  # type: ignore[index]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "d.jsonl", "out"]


def test_a_failing_build_leaves_the_old_dataset_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    build_dataset([many(tmp_path / "c.jsonl", 5)], [], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_lines(tmp_path / "bad.jsonl", "{")
    with pytest.raises(DatasetError):
        build_dataset([bad], [], out)

    real_write, real_rename = Path.write_bytes, dataset.os.rename
    writes: list[Path] = []

    def write_once(path: Path, data: bytes) -> int:
        writes.append(path)
        if len(writes) > 1:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", write_once)
    with pytest.raises(OSError, match="No space"):
        build_dataset([many(tmp_path / "d.jsonl", 3)], [], out)
    monkeypatch.undo()
    assert writes[0].parent.name.startswith(".out.")  # it did start writing, elsewhere

    def rename_once(source: str, target: str) -> None:
        if Path(target) == out and ".old" not in str(source):
            raise OSError(18, "Invalid cross-device link")
        real_rename(source, target)

    monkeypatch.setattr(dataset.os, "rename", rename_once)
    with pytest.raises(OSError, match="cross-device"):
        build_dataset([many(tmp_path / "e.jsonl", 3)], [], out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.jsonl", "c.jsonl", "d.jsonl", "e.jsonl", "out",
    ]  # fmt: skip


def test_a_folder_that_is_not_a_dataset_is_never_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="is not a dataset: choose another output folder"):
        build_dataset([many(tmp_path / "c.jsonl", 2)], [], precious)
    assert [p.name for p in precious.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_dataset([many(tmp_path / "c.jsonl", 2)], [], empty).train == 1


def test_read_examples_round_trips_and_reports_bad_lines(tmp_path: Path) -> None:
    curated = write_lines(
        tmp_path / "c.jsonl",
        chat(("user", "Ünïcode ✓?"), ("assistant", "Oui — ça marche.")),
        qa("Two?", "Yes."),
    )
    build_dataset([curated], [], tmp_path / "out", system="S")
    built = read_examples(tmp_path / "out" / "train.jsonl")
    built += read_examples(tmp_path / "out" / "eval.jsonl")
    assert sorted(built, key=str) == sorted(
        [
            [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Ünïcode ✓?"},
                {"role": "assistant", "content": "Oui — ça marche."},
            ],
            [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Two?"},
                {"role": "assistant", "content": "Yes."},
            ],
        ],
        key=str,
    )
    assert "Ünïcode ✓?" in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8") + (
        tmp_path / "out" / "eval.jsonl"
    ).read_text(encoding="utf-8")

    broken = write_lines(tmp_path / "train.jsonl", chat(("user", "q"), ("assistant", "a")), "{")
    with pytest.raises(DatasetError, match=f"{broken}:2: invalid JSON"):
        read_examples(broken)
    with pytest.raises(DatasetError, match="file not found") as caught:
        read_examples(tmp_path / "nowhere" / "train.jsonl")
    assert "ajuste finetune dataset build" in str(caught.value)


def test_load_manifest_explains_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"not a built dataset .*`ajuste finetune dataset build`"
    ):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{half")
    with pytest.raises(DatasetError, match="unreadable"):
        load_manifest(tmp_path)


def test_no_examples_says_where_to_add_some(tmp_path: Path) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", "", "   ")
    feedback = [vote("a", -1, "ann"), vote("b", 1, "ann"), vote("b", -1, "bob")]
    with pytest.raises(DatasetError, match=r"curated JSONL file.*👍 good answers in Slack"):
        build_dataset([empty], feedback, tmp_path / "out")
    with pytest.raises(DatasetError, match="No training examples"):
        build_dataset([], [], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_eval_fraction_must_be_a_fraction(tmp_path: Path) -> None:
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(DatasetError, match="between 0 and 1"):
            build_dataset(
                [many(tmp_path / "c.jsonl", 3)], [], tmp_path / "out", eval_fraction=fraction
            )
