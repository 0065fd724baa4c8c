"""`sprout inspect` / `sprout curate` below the page: the run's index (counts against report.json, facets, search),
near-duplicate neighbours, lineage chains, marks, curation, the rule audit, the API and the SQLite export. The page
itself is tested in headless Chromium on a real embedded-model run (tests/test_end_to_end.py)."""

import json
import sqlite3
import threading
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record, Rejection
from sprout.review import audit, queries
from sprout.review.curate import curate
from sprout.review.marks import append_mark, read_marks
from sprout.review.run_index import build_index, open_index
from sprout.review.server import Inspector, make_server
from sprout.review.word_diff import word_diff
from tests.test_cli import sprout


def record(instruction, generator="self_instruct", operation="input_first", parents=(), round_=0, output="An answer.",
           label=None, stage="instances", **extra):
    lineage = Lineage(generator=generator, operation=operation, parent_ids=list(parents), round=round_,
                      seed_ids=["seed_1", "seed_2"], prompts={"input_first": "abc123def456"},
                      sampling={"temperature": 0.7, "seed": 42}, stage=stage, **extra)
    return Record(instruction=instruction, output=output, label=label, lineage=lineage,
                  kind="classification" if label else "generation")


@pytest.fixture
def run_dir(tmp_path):
    """A run as sprout writes one: a task grown and evolved twice, classification pairs, near-duplicate drops with
    their neighbours, a judge drop, a torn last line, and a report.json whose counts match the files."""
    root = record("Write a short poem about the sea.")
    child = record("Write a short poem about the sea in exactly four lines.", "evol_instruct", "add_constraints",
                   [root.id], 1, root_id=root.id, chain=[root.id], operations=["add_constraints"], stage="evolutions")
    grandchild = record("Write a four-line poem about the sea that rhymes and names a ship.", "evol_instruct",
                        "deepen", [child.id], 2, root_id=root.id, chain=[root.id, child.id],
                        operations=["add_constraints", "deepen"], stage="evolutions")
    pairs = [record(f"Is this promise kept? Case {i}.", "pair_synthesis", "output_first", label=label,
                    output=label, stage="pairs:promises") for i, label in enumerate(["True", "False", "True"])]
    accepted = [root, child, grandchild, *pairs]
    near = record("Write a short poem about the ocean.")
    dropped = [
        Rejection(rule="rouge_l", reason="ROUGE-L 0.857 > 0.7 with 'Write a short poem about the sea.'", score=0.857,
                  record=near, stage="instances",
                  neighbour={"id": root.id, "fields": {"instruction": root.instruction}}),
        Rejection(rule="rouge_l", reason="ROUGE-L 0.8 > 0.7 with 'Name a colour.'", score=0.8, stage="instances",
                  record=record("Name a colour please."), neighbour={"fields": {"instruction": "Name a colour."}}),
        Rejection(rule="judge:equal", reason="the judge found no information gain", stage="evolutions",
                  record=record("Write a poem about the sea, short.", "evol_instruct", "deepen", [root.id], 1,
                                stage=None)),
    ]
    (tmp_path / "examples.jsonl").write_text("".join(r.to_json() + "\n" for r in accepted))
    (tmp_path / "rejected.jsonl").write_text("".join(r.to_json() + "\n" for r in dropped) + '{"rule": "rou')
    report = {"examples": 6, "rejected": 3, "command": "sprout data",
              "stages": {"instances": {"entered": 3, "accepted": 1, "rules": {"rouge_l": {"checked": 3, "dropped": 2}}},
                         "evolutions": {"entered": 3, "accepted": 2,
                                        "rules": {"judge:equal": {"checked": 3, "dropped": 1}}},
                         "pairs:promises": {"entered": 3, "accepted": 3, "rules": {}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    return tmp_path, {"root": root, "child": child, "grandchild": grandchild, "near": near, "pairs": pairs}


def test_the_index_counts_what_the_files_hold_and_checks_them_against_report_json(run_dir):
    path, _ = run_dir
    conn = open_index(path)
    queries.Marks(conn, {})
    summary = queries.run_summary(conn)
    assert (summary["accepted"], summary["rejected"]) == (6, 3)
    assert summary["rules"] == {"rouge_l": 2, "judge:equal": 1} and summary["mismatches"] == []
    assert summary["unreadable_lines"] == {"examples.jsonl": 0, "rejected.jsonl": 1}  # the torn line, counted
    report = json.loads((path / "report.json").read_text())
    report["stages"]["instances"]["rules"]["rouge_l"]["dropped"] = 5
    (path / "report.json").write_text(json.dumps(report))
    conn = open_index(path)  # the changed file makes it rebuild
    queries.Marks(conn, {})
    assert queries.run_summary(conn)["mismatches"] == ["rule rouge_l: 2 rejects in the file, 5 in report.json"]


def test_facets_filter_and_count_like_a_faceted_search(run_dir):
    conn = open_index(run_dir[0])
    queries.Marks(conn, {})
    found = queries.list_rows(conn, {"status": ["rejected"]})
    assert found["total"] == 3 and {r["status"] for r in found["rows"]} == {"rejected"}
    facets = found["facets"]
    assert dict(facets["status"]) == {"accepted": 6, "rejected": 3}  # a facet counts as if it were not filtered
    assert dict(facets["rule"]) == {"rouge_l": 2, "judge:equal": 1}
    assert dict(facets["stage"]) == {"instances": 2, "evolutions": 1}
    both = queries.list_rows(conn, {"generator": ["evol_instruct", "pair_synthesis"]})  # values of a facet: OR
    assert both["total"] == 6
    labelled = queries.list_rows(conn, {"generator": ["pair_synthesis"], "label": ["True"]})  # facets: AND
    assert labelled["total"] == 2 and dict(labelled["facets"]["label"]) == {"True": 2, "False": 1}
    assert queries.list_rows(conn, {"round": ["2"]})["total"] == 1
    assert queries.list_rows(conn, {"rule": ["(none)"]})["total"] == 6


def test_search_covers_every_text_field_and_takes_any_input(run_dir):
    path, made = run_dir
    conn = open_index(path)
    queries.Marks(conn, {})
    assert {r["id"] for r in queries.list_rows(conn, {}, "ocean")["rows"]} == {made["near"].id}
    assert queries.list_rows(conn, {}, "information gain")["total"] == 1  # a reject's reason
    assert queries.list_rows(conn, {}, "promi")["total"] == 3  # words are prefixes: results while typing
    assert queries.list_rows(conn, {}, made["child"].id[:8])["rows"][0]["id"] == made["child"].id
    for awkward in ('"unbalanced', "a AND (b OR", "NEAR(x y)", "*", "col:umn", "'; DROP TABLE rows; --"):
        queries.list_rows(conn, {}, awkward)  # never an FTS syntax error
    assert queries.list_rows(conn, {"status": ["accepted"]}, "sea")["total"] == 3


def test_a_near_duplicate_drop_shows_its_neighbour_with_the_differing_words(run_dir):
    path, made = run_dir
    conn = open_index(path)
    queries.Marks(conn, {})
    rowid = queries.list_rows(conn, {}, "ocean")["rows"][0]["rowid"]
    detail = queries.row_detail(conn, rowid)
    assert detail["rule"] == "rouge_l" and detail["score"] == 0.857 and "0.857" in detail["reason"]
    neighbour = detail["neighbour"]
    assert neighbour["id"] == made["root"].id and neighbour["rowid"] is not None
    diff = neighbour["diffs"]["instruction"]
    assert ["del", "ocean."] in diff["left"] and ["ins", "sea."] in diff["right"]
    assert diff["left"][0] == ["same", "Write a short poem about the "]
    seed_like = queries.row_detail(conn, queries.list_rows(conn, {}, "colour please")["rows"][0]["rowid"])
    assert seed_like["neighbour"]["id"] is None and seed_like["neighbour"]["rowid"] is None  # a seed's text


def test_lineage_walks_up_to_the_root_with_word_diffs_and_down_to_the_children(run_dir):
    path, made = run_dir
    conn = open_index(path)
    queries.Marks(conn, {})
    rowid = queries.find_rows(conn, made["grandchild"].id[:10])[0]["rowid"]
    detail = queries.row_detail(conn, rowid)
    chain = detail["chain"]
    assert [s["parent_id"] for s in chain] == [made["child"].id, made["root"].id]
    assert chain[0]["operation"] == "deepen" and chain[1]["operation"] == "add_constraints"
    assert any(op == "ins" and "rhymes and names a ship." in text for op, text in chain[0]["diff"]["right"])
    assert any(op == "del" and "in exactly four lines." in text for op, text in chain[0]["diff"]["left"])
    assert detail["lineage"]["prompts"] == {"input_first": "abc123def456"} and detail["lineage"]["sampling"]
    root = queries.row_detail(conn, chain[1]["rowid"])
    assert root["chain"] == []
    assert {c["id"] for c in root["children"]} == {made["child"].id, Record.model_validate(
        json.loads((path / "rejected.jsonl").read_text().splitlines()[2])["record"]).id}


@given(st.text(alphabet=st.sampled_from(list("ab c\n.")), max_size=40),
       st.text(alphabet=st.sampled_from(list("ab c\n.")), max_size=40))
def test_word_diff_sides_spell_out_both_texts(before, after):
    diff = word_diff(before, after)
    assert "".join(t for _, t in diff["left"]) == before and "".join(t for _, t in diff["right"]) == after
    assert {op for op, _ in diff["left"]} <= {"same", "del"} and {op for op, _ in diff["right"]} <= {"same", "ins"}
    same_left = "".join(t for op, t in diff["left"] if op == "same").split()
    assert same_left == "".join(t for op, t in diff["right"] if op == "same").split()


def test_marks_last_line_wins_null_clears_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "marks.jsonl"
    append_mark(path, "a", "accepted", "bad", "off topic")
    append_mark(path, "b", "rejected", "good")
    append_mark(path, "a", "accepted", "good", "fine after all")
    append_mark(path, "b", "rejected", None)
    with open(path, "a") as handle:
        handle.write('{"id": "c", "ma')  # a kill mid-write
    append_mark(path, "d", "rejected", "bad")  # starts its own line
    with open(path, "a") as handle:
        handle.write('{"id": "e", "mark": "good"}\n')  # by hand, no status: both sides
    marks = read_marks(path)
    assert {k: m["mark"] for k, m in marks.items()} == {
        ("a", "accepted"): "good", ("d", "rejected"): "bad", ("e", "accepted"): "good", ("e", "rejected"): "good"}
    assert marks[("a", "accepted")]["note"] == "fine after all"
    path.write_text('{"id": "x", "mark": "maybe"}\n')
    with pytest.raises(UserError, match=r"marks.jsonl:1: mark 'maybe'"):
        read_marks(path)


def test_curate_removes_bad_adds_good_rejects_and_reports_it(run_dir, tmp_path):
    path, made = run_dir
    marks = tmp_path / "m.jsonl"
    append_mark(marks, made["pairs"][0].id, "accepted", "bad", "label is wrong")
    append_mark(marks, made["near"].id, "rejected", "good")  # a rouge_l reject rescued
    append_mark(marks, made["root"].id, "accepted", "good")  # agrees with the run
    append_mark(marks, "0123456789abcdef", "accepted", "bad")  # another run's record
    out = tmp_path / "curated.jsonl"
    report = curate(path, marks, out)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert made["pairs"][0].id not in ids and ids[-1] == made["near"].id and len(ids) == len(set(ids)) == 6
    assert (report["removed"], report["added"], report["marks_unmatched"]) == (1, 1, 1)
    assert report["removed_by_generator"] == {"pair_synthesis": 1} and report["added_by_rule"] == {"rouge_l": 1}
    assert report["confirmed"]["good_accepted"] == 1
    assert report["notes"] == {f"{made['pairs'][0].id} (accepted)": "label is wrong"}
    assert json.loads((tmp_path / "curated.jsonl.report.json").read_text())["written"] == 6
    assert "added back from the rejects (marked good): 1" in (tmp_path / "curated.jsonl.report.md").read_text()
    with pytest.raises(UserError, match="exists"):
        curate(path, marks, out)


def test_wilson_interval_known_values_and_bounds():
    low, high = audit.wilson(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = audit.wilson(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert audit.wilson(0, 0) is None
    for n in range(1, 30):
        for k in range(n + 1):
            low, high = audit.wilson(k, n)
            assert 0 <= low <= k / n <= high <= 1


def test_the_audit_draws_per_rule_and_per_generator_and_measures_precision(run_dir):
    path, made = run_dir
    conn = open_index(path)
    sample = audit.load_or_draw(path, conn, 1, seed=3)
    strata = [d["stratum"] for d in sample["drawn"]]
    assert sorted(strata) == ["generator:evol_instruct", "generator:pair_synthesis", "generator:self_instruct",
                              "rule:judge:equal", "rule:rouge_l"]
    assert sample["populations"]["rule:rouge_l"] == 2 and sample["populations"]["generator:pair_synthesis"] == 3
    assert audit.load_or_draw(path, conn, 1, seed=3) == sample  # kept in audit.json, not redrawn
    full = audit.draw_sample(conn, 10)
    assert len(full["drawn"]) == 9  # fewer than N in a stratum: all of it
    marks = {(d["id"], "rejected"): {"mark": "bad"} for d in full["drawn"] if d["stratum"] == "rule:rouge_l"}
    marks[(made["pairs"][1].id, "accepted")] = {"mark": "bad"}
    marks[(made["pairs"][0].id, "accepted")] = {"mark": "good"}
    report = audit.audit_report(full, marks)
    rouge = next(r for r in report["rules"] if r["name"] == "rouge_l")
    assert (rouge["marked"], rouge["bad"], rouge["precision"]) == (2, 2, 1.0) and rouge["ci95"][1] == 1.0
    pairs = next(g for g in report["generators"] if g["name"] == "pair_synthesis")
    assert (pairs["drawn"], pairs["marked"], pairs["error_rate"]) == (3, 2, 0.5)
    assert next(r for r in report["rules"] if r["name"] == "judge:equal")["precision"] is None
    assert "| rouge_l | 2 | 2 | 2 | 2 | 100% (95% CI 34%–100%) |" in audit.audit_markdown(report)
    assert len(audit.sample_rowids(conn, full)) == 9


def test_the_api_serves_rows_details_and_saves_marks_to_disk(run_dir):
    path, made = run_dir
    marks_path = path / "marks.jsonl"
    server = make_server(Inspector(path, open_index(path), marks_path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def get(url):
        with urllib.request.urlopen(base + url, timeout=10) as response:
            return json.loads(response.read())

    try:
        assert get("/api/summary")["accepted"] == 6
        rows = get("/api/rows?status=rejected&rule=rouge_l&limit=1")
        assert rows["total"] == 2 and len(rows["rows"]) == 1
        detail = get(f"/api/row/{rows['rows'][0]['rowid']}")
        body = json.dumps({"id": detail["id"], "status": "rejected", "mark": "good", "note": "kept on purpose"})
        request = urllib.request.Request(base + "/api/mark", body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["mark"] == "good"
        assert read_marks(marks_path)[(detail["id"], "rejected")]["note"] == "kept on purpose"  # on disk
        # Another web page cannot write marks (a form post, or a fetch from its origin) nor read the run through a
        # hostname it rebound to 127.0.0.1.
        for headers in ({"Content-Type": "text/plain"},
                        {"Content-Type": "application/json", "Origin": "http://evil.example"}):
            forged = urllib.request.Request(base + "/api/mark", body.encode(), method="POST", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(forged, timeout=10)
            assert caught.value.code == 403
        rebound = urllib.request.Request(base + "/api/summary", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(rebound, timeout=10)
        assert caught.value.code == 403
        assert len(read_marks(marks_path)) == 1
        assert get("/api/rows?mark=good")["total"] == 1 and get("/api/rows?mark=unmarked")["total"] == 8
        for bad in ("/static/../run_index.py", "/api/row/999999", "/nothing"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(base + bad, timeout=10)
            assert caught.value.code == 404
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "/static/app.js" in page and "http" not in page.replace("http-equiv", "")  # nothing fetched elsewhere
    finally:
        server.shutdown()
        server.server_close()


def test_sqlite_export_opens_with_views_full_text_search_and_marks(run_dir, tmp_path):
    path, made = run_dir
    append_mark(path / "marks.jsonl", made["root"].id, "accepted", "good", "a fine seed-like task")
    db = tmp_path / "run.db"
    result = sprout("inspect", str(path), "--sqlite", str(db))
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 6
    assert conn.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 3
    hits = conn.execute("SELECT rows.id FROM rows_fts JOIN rows ON rows.rowid = rows_fts.rowid "
                        "WHERE rows_fts MATCH 'ocean'").fetchall()
    assert hits == [(made["near"].id,)]
    assert conn.execute("SELECT COUNT(*) FROM edges WHERE relation = 'evolved_from'").fetchone()[0] == 3
    assert conn.execute("SELECT status, mark, note FROM marks").fetchall() == [("accepted", "good",
                                                                                "a fine seed-like task")]
    assert not list(tmp_path.glob(".*building*"))


def test_commands_refuse_what_they_cannot_use_with_one_message(tmp_path):
    result = sprout("inspect", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no examples.jsonl or rejected.jsonl here" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "examples.jsonl").write_text("")
    result = sprout("curate", str(tmp_path), "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "no marks file" in result.stderr and not (tmp_path / "o.jsonl").exists()
    result = sprout("inspect", str(tmp_path), "--audit-report")
    assert result.returncode == 2 and "no audit sample yet" in result.stderr
    result = sprout("inspect", str(tmp_path), "--audit", "0")
    assert result.returncode == 2 and "at least 1 row" in result.stderr


def test_an_index_from_elsewhere_or_torn_is_rebuilt(run_dir):
    path, _ = run_dir
    build_index(path, path / ".sprout-inspect.sqlite")
    (path / ".sprout-inspect.sqlite").write_bytes(b"not a database at all")
    conn = open_index(path)
    assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 9


@pytest.mark.parametrize("dedup_on", [None, "all"])
def test_a_filter_stage_writes_the_stage_and_the_near_duplicate_neighbour(dedup_on):
    """What the inspector shows comes from the rejects file: the stage that dropped a row, and for a near-duplicate
    the row it matched (its id when it is a record of the run, none for a seed's text)."""
    from sprout.filters.dedup_rules import RougeDedup
    from sprout.filters.stage import FilterStage

    rule = RougeDedup(0.7, dedup_on=dedup_on)
    stage = FilterStage("instances", [rule])
    stage.seed_dedup(["Name three colours of the rainbow."] if dedup_on is None else [])
    first = record("Write a short poem about the sea.")
    again = record("Write a short poem about the ocean.")
    seedlike = record("Name three colours of the rainbow please.")
    accepted, rejected, _ = stage.run([first, again, seedlike])
    assert [r.id for r in accepted] == [first.id] + ([seedlike.id] if dedup_on else [])
    assert accepted[0].lineage.stage == "instances"
    near = json.loads(rejected[0].to_json())
    assert near["stage"] == "instances" and near["neighbour"]["id"] == first.id
    assert near["neighbour"]["fields"]["instruction"] == first.instruction
    if dedup_on is None:
        assert json.loads(rejected[1].to_json())["neighbour"] == {
            "id": None, "fields": {"instruction": "Name three colours of the rainbow."}}
    else:
        assert set(near["neighbour"]["fields"]) == {"instruction", "input", "output"}
    assert Rejection.model_validate(near).neighbour == near["neighbour"]  # reads back


def test_a_mark_holds_for_its_side_when_one_content_is_accepted_and_rejected(run_dir, tmp_path):
    """An exact duplicate's reject has the kept record's id: "bad" on the duplicate (right to drop it) must leave
    the kept one in, and the page's mark facet counts each side on its own."""
    path, made = run_dir
    duplicate = Rejection(rule="exact_duplicate", reason="exact duplicate of an accepted record", record=made["root"],
                          stage="instances")
    with open(path / "rejected.jsonl", "a") as handle:
        handle.write("\n" + duplicate.to_json() + "\n")  # (after the torn line the fixture left)
    marks = tmp_path / "m.jsonl"
    append_mark(marks, made["root"].id, "rejected", "bad")
    report = curate(path, marks, tmp_path / "out.jsonl")
    assert report["removed"] == 0 and report["confirmed"]["bad_rejected"] == 1
    assert made["root"].id in (tmp_path / "out.jsonl").read_text()
    conn = open_index(path)
    queries.Marks(conn, read_marks(marks))
    assert queries.list_rows(conn, {}, mark="bad")["rows"][0]["status"] == "rejected"
    assert queries.list_rows(conn, {}, mark="bad")["total"] == 1


def test_lines_that_are_not_records_are_counted_not_fatal(run_dir):
    path, _ = run_dir
    with open(path / "examples.jsonl", "a") as handle:
        handle.write('{"id": "x", "instruction": ["a", "list"], "lineage": {}}\n["not", "an", "object"]\n'
                     '{"id": "y", "instruction": "fine", "lineage": "not a mapping"}\n')
    (path / "report.json").write_text('{"examples": 6, "rej')  # torn
    conn = open_index(path)
    queries.Marks(conn, {})
    summary = queries.run_summary(conn)
    assert summary["accepted"] == 6 and summary["unreadable_lines"]["examples.jsonl"] == 3
    assert summary["report"] == {} and summary["mismatches"] == []
