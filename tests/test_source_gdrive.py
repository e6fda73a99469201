"""Google Drive through a loopback fake of the Drive API and Google's token endpoint."""

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retrieval.indexer import Indexer
from retrieval.sources.base import SourceError
from retrieval.sources.config import SourcesFileError, load_sources, register_kind
from retrieval.sources.gdrive import KIND, GdriveConfig, GdriveSource, build
from tests.fake_gdrive import DOC, FOLDER, KEY_ENV, SHEET, FakeDrive, doc_html, sources_entry


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDrive]:
    fake = FakeDrive(page_size=3)
    for name, value in sources_entry(fake, "drive")[1].items():
        monkeypatch.setenv(name, value)
    yield fake
    fake.close()


class Recorder(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(
    drive: FakeDrive, *, max_bytes: int = 10**6, sleep: Recorder | None = None, **options: Any
) -> GdriveSource:
    entry = {**sources_entry(drive, "drive")[0], **options}
    return GdriveSource(
        GdriveConfig.model_validate(entry),
        max_bytes=max_bytes,
        sleep=Recorder() if sleep is None else sleep,
    )


def search(indexer: Indexer, query: str) -> list:
    return indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )


def test_folders_are_listed_page_by_page_and_only_changes_are_fetched(
    drive: FakeDrive, indexer: Indexer
):
    drive.populate(7, "first")
    handbook = drive.add(FOLDER, "Onboarding")
    drive.doc(
        "Laptops", "New starters collect laptops from the third floor desk.", parent=handbook.id
    )
    drive.add("text/markdown", "parking.md", b"# Parking\n\nThe garage closes at 22:00 sharp.")
    first = indexer.index_source(source(drive))
    assert (first.added, first.failed) == (9, 0), first.problems
    listings = [p for m, p, q in drive.requests if p == "/drive/v3/files" and "pageToken" in q]
    assert len(listings) >= 2  # 9 entries in the folder, 3 a page

    hit = search(indexer, "Document 3 code word")[0]
    doc3 = next(i for i in drive.items.values() if i.name == "Document 3")
    assert (hit.title, hit.location) == ("Document 3", doc3.resource()["webViewLink"])
    assert hit.location.startswith("https://docs.google.com/document/d/")
    laptops = search(indexer, "where do new starters get laptops")[0]
    assert laptops.title == "Laptops" and "third floor" in laptops.text
    assert search(indexer, "garage closing time")[0].title == "parking"

    drive.edit(doc3, doc_html("Document 3", "Document 3 now says the code word is falcon."))
    trashed = next(i for i in drive.items.values() if i.name == "Document 5")
    trashed.trashed = True
    del drive.items[next(i.id for i in drive.items.values() if i.name == "Document 6")]
    drive.requests.clear()
    second = indexer.index_source(source(drive))
    assert (second.updated, second.deleted, second.unchanged) == (1, 2, 6)
    assert drive.content_requests() == [doc3.id]  # the others cost only the listing
    assert "falcon" in search(indexer, "Document 3 code word")[0].text
    assert not any("Document 5" in h.title for h in search(indexer, "Document 5 code word"))

    shallow = source(drive, recursive=False).refs()
    assert "Laptops" not in {drive.items[r.doc_id.removeprefix("gdrive:")].name for r in shallow}


def test_sheets_keep_their_column_names_in_every_chunk(drive: FakeDrive, indexer: Indexer):
    people = [["Name", "Team", "Extension"]]
    people += [[f"Person {n}", f"Team {n % 4}", f"{4100 + n}"] for n in range(60)]
    rooms = [["Room", "Floor", "Seats"], ["Kestrel", "4", "12"], ["Osprey", "2", "6"]]
    drive.add(SHEET, "Directory", {"People": people, "Rooms": rooms})
    report = indexer.index_source(source(drive))
    assert (report.added, report.failed) == (1, 0) and report.chunks_embedded > 3
    hits = [h for q in ("Person 57 extension", "Person 3 team") for h in search(indexer, q)]
    assert any("| Person 57 | Team 1 | 4157 |" in h.body for h in hits)
    for hit in (h for h in hits if h.heading == "Directory › People"):
        assert hit.body.startswith("| Name | Team | Extension |\n| --- | --- | --- |\n")
    room = next(h for h in search(indexer, "how many seats in Osprey") if "Osprey" in h.body)
    assert room.heading == "Directory › Rooms" and room.body.startswith("| Room | Floor | Seats |")


def test_a_refused_key_or_token_fails_the_run_and_keeps_the_documents(
    drive: FakeDrive, indexer: Indexer
):
    drive.populate(2, "first")
    indexer.index_source(source(drive))
    private_key = json.loads(drive.key_path.read_text())["private_key"]

    drive.refuse_tokens = True  # the API answers 401
    with pytest.raises(SourceError) as refused:
        indexer.index_source(source(drive))
    message = str(refused.value)
    assert re.match(r"source 'drive': HTTP 401 from GET .*/drive/v3/files/", message)
    assert "ajuste-indexer@kestrel-docs.iam.gserviceaccount.com" in message

    drive.refuse_tokens, drive.refuse_key = False, True  # the token endpoint says invalid_grant
    with pytest.raises(
        SourceError, match=r"source 'drive': no access token .*invalid_grant"
    ) as bad:
        indexer.index_source(source(drive))
    for text in (message, str(bad.value)):
        assert "\n" not in text and "ya29" not in text and "PRIVATE KEY" not in text
    config = source(drive).config
    assert private_key not in repr(config) and "ya29" not in repr(config)
    assert len(indexer.store.documents(source="drive")) == 2  # kept


def test_a_missing_folder_or_shared_drive_is_one_clear_line(drive: FakeDrive):
    with pytest.raises(SourceError) as missing:
        source(drive, folders=["1NoSuchFolder"]).refs()
    assert str(missing.value) == (
        "source 'drive': Google Drive has no folder 1NoSuchFolder, or it is not shared with "
        "ajuste-indexer@kestrel-docs.iam.gserviceaccount.com: check the id, and share it with "
        "that address"
    )
    with pytest.raises(SourceError, match=r"no shared drive 0ANoSuchDrive, .* add it as a member"):
        source(drive, folders=[], shared_drives=["0ANoSuchDrive"]).refs()
    note = drive.doc("Not a folder", "Just a document.")
    with pytest.raises(SourceError, match=r"\('Not a folder'\) is a file, not a folder"):
        source(drive, folders=[note.id]).refs()


def test_shared_drives_are_listed_as_their_own_corpus(drive: FakeDrive, indexer: Indexer):
    shared = drive.add_drive("Engineering")
    drive.doc("Deploys", "Deploys happen on Tuesdays after the standup.", parent=shared)
    report = indexer.index_source(source(drive, folders=[], shared_drives=[shared]))
    assert (report.added, report.failed) == (1, 0), report.problems
    listing = next(q for m, p, q in drive.requests if p == "/drive/v3/files")
    assert (listing["corpora"], listing["driveId"]) == ("drive", shared)
    assert search(indexer, "when are deploys")[0].location.startswith("https://docs.google.com/")


def test_rate_limits_are_waited_out(drive: FakeDrive, indexer: Indexer):
    drive.populate(3, "first")
    drive.fail(
        "GET /drive/v3/files?", 429, headers={"Retry-After": "1"}, reason="rateLimitExceeded"
    )
    drive.fail("/export", 403, reason="userRateLimitExceeded")  # Drive's own way, no Retry-After
    sleeps = Recorder()
    report = indexer.index_source(source(drive, sleep=sleeps))
    assert (report.added, report.failed) == (3, 0), report.problems
    assert sleeps[0] == 1.0  # as Retry-After said
    assert len(sleeps) == 2 and 1.0 <= sleeps[1] < 2.0  # the first step of Drive's backoff


def test_a_listing_cut_by_a_server_error_fails_and_deletes_nothing(
    drive: FakeDrive, indexer: Indexer
):
    drive.populate(7, "first")
    indexer.index_source(source(drive))
    drive.fail("pageToken=", 500, times=10)
    with pytest.raises(SourceError, match=r"source 'drive': HTTP 500 from GET .*/drive/v3/files"):
        indexer.index_source(source(drive))
    assert len(indexer.store.documents(source="drive")) == 7


def test_big_and_unknown_files_are_skipped_with_a_reason(drive: FakeDrive, indexer: Indexer):
    drive.populate(2, "first")
    scan = drive.add("application/pdf", "scan.pdf", b"%PDF-1.4" + b"0" * 2_200_000)
    logo = drive.add("image/png", "logo.png", b"\x89PNG\r\n\x1a\n")
    report = indexer.index_source(source(drive, max_bytes=1048576))
    assert (report.added, report.failed) == (2, 2)
    problems = "\n".join(report.problems)
    assert (
        f"/file/d/{scan.id}/view?usp=drivesdk: 2.1 MB is over the size limit: skipped" in problems
    )
    assert f"/file/d/{logo.id}/view?usp=drivesdk: skipped: image/png is not a document" in problems
    assert drive.content_requests() == [i.id for i in drive.items.values() if i.mime == DOC]


def test_a_doc_over_drives_export_limit_is_skipped(drive: FakeDrive, indexer: Indexer):
    drive.doc("Small", "A small document about bicycles.")
    drive.doc("Huge", "Pretend this one is enormous. " * 40)
    drive.export_limit = 1200
    report = indexer.index_source(source(drive))
    assert (report.added, report.failed) == (1, 1)
    assert "over Google Drive's 10 MB export limit: skipped" in report.problems[0]


def test_a_sources_entry_parses_and_an_inline_secret_is_refused(tmp_path: Path):
    register_kind(KIND, GdriveConfig, build)
    path = tmp_path / "sources.yaml"
    path.write_text(
        textwrap.dedent(
            """
            sources:
              - name: handbook
                kind: gdrive
                folders: ["https://drive.google.com/drive/folders/1AbC-dEf_123?usp=sharing"]
                shared_drives: [0AbCdEfGhIjK]
                recursive: false
                every: 1h
            """
        )
    )
    (config,) = load_sources(path)
    assert isinstance(config, GdriveConfig)
    assert (config.folders, config.shared_drives) == (["1AbC-dEf_123"], ["0AbCdEfGhIjK"])
    assert config.secret_origin.startswith("$GOOGLE_APPLICATION_CREDENTIALS")
    for line, message in [
        ("    token: abc\n", "`token` does not belong in sources.yaml"),
        ("    credentials: abc\n", "`credentials` does not belong in sources.yaml"),
        ("    folders: []\n", "needs `folders`, `shared_drives`, or both"),
        ("    folders: ['a b']\n", "'a b' is neither a Drive folder id nor a folder URL"),
    ]:
        path.write_text(f"sources:\n  - name: h\n    kind: gdrive\n{line}")
        with pytest.raises(SourcesFileError, match=re.escape(message)):
            load_sources(path)


def test_a_bad_key_says_what_is_wrong(drive: FakeDrive, tmp_path: Path, monkeypatch):
    def problem(**options: Any) -> str:
        with pytest.raises(SourceError) as error:
            source(drive, **options).refs()
        assert "\n" not in str(error.value) and "PRIVATE KEY" not in str(error.value)
        return str(error.value)

    monkeypatch.delenv(KEY_ENV)
    assert "needs a Google service account key: set GDRIVE_TEST_KEY_FILE" in problem()
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "missing.json"))
    assert (
        "missing.json) is unusable (No such file or directory): it must be a service" in problem()
    )
    user = tmp_path / "user.json"
    user.write_text('{"type": "authorized_user", "refresh_token": "1//secret"}')
    monkeypatch.setenv(KEY_ENV, str(user))
    assert "(a 'authorized_user' file)" in problem() and "1//secret" not in problem()
    info = json.loads(drive.key_path.read_text())
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**info, "private_key": "-----BEGIN PRIVATE KEY-----\nAA=="}))
    assert "secrets_file" in problem(secrets_file=str(broken), token_env=None)
    del info["client_email"]
    monkeypatch.setenv(KEY_ENV, json.dumps(info))  # the key itself in the variable is fine too
    assert "missing fields client_email" in problem()
