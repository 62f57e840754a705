"""Manifests: parsing, validation errors naming the line, path resolution, writing,
Kaldi conversion, and the committed manifests of data_manifests/."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from gmmspeech.corpus.manifest import Row, from_kaldi, read_manifest, write_manifest
from gmmspeech.errors import ManifestError

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "data_manifests"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- parsing


def test_reads_rows_with_and_without_segments(tmp_path):
    m = _write(tmp_path / "m.csv",
               "id,path,label,start,end\n"
               "a,x/a.wav,spk1,,\n"
               "\n"
               "b,x/b.wav,spk2,0.5,2.25\n"
               "c,x/c.wav,,1,\n")
    rows = read_manifest(m)
    assert [r.id for r in rows] == ["a", "b", "c"]
    assert [r.label for r in rows] == ["spk1", "spk2", ""]
    assert (rows[0].start, rows[0].end) == (None, None)
    assert (rows[1].start, rows[1].end) == (0.5, 2.25)
    assert rows[1].duration == pytest.approx(1.75)
    assert (rows[2].start, rows[2].end) == (1.0, None)
    assert [r.line for r in rows] == [2, 4, 5]


def test_time_columns_may_be_absent_and_extra_columns_are_kept(tmp_path):
    m = _write(tmp_path / "m.csv", "path,label,id,gender\n/abs/a.wav,s,a,f\n")
    (row,) = read_manifest(m)
    assert row == Row("a", "/abs/a.wav", "s", None, None, 2)
    assert row.extra == {"gender": "f"}


def test_bom_and_quoted_fields(tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes('\ufeffid,path,label\n"a,1","dir with space/a.wav",x\n'.encode())
    (row,) = read_manifest(m)
    assert row.id == "a,1"
    assert row.path == str(tmp_path / "dir with space" / "a.wav")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("id,path\na,b.wav\n", 1, "missing column label"),
        ("path,label\nb.wav,x\n", 1, "missing column id"),
        ("id,path,label\na,a.wav,x\nb,b.wav,y\na,c.wav,z\n", 4, "duplicate id 'a' (first on line 2)"),
        ("id,path,label,start,end\na,a.wav,x,zero,1\n", 2, "start='zero' is not a number"),
        ("id,path,label,start,end\na,a.wav,x,0,1s\n", 2, "end='1s' is not a number"),
        ("id,path,label,start,end\na,a.wav,x,0,nan\n", 2, "not a finite number"),
        ("id,path,label,start,end\na,a.wav,x,0,1\nb,b.wav,x,2,2\n", 3, "end=2 is not after start=2"),
        ("id,path,label,start,end\na,a.wav,x,3,1\n", 2, "end=1 is not after start=3"),
        ("id,path,label,start,end\na,a.wav,x,,0\n", 2, "end=0 is not after start=0"),
        ("id,path,label,start,end\na,a.wav,x,-0.5,1\n", 2, "negative start=-0.5"),
        ("id,path,label\nok,a.wav,x\n,b.wav,y\n", 3, "empty id"),
        ("id,path,label\nok,a.wav,x\nb, ,y\n", 3, "empty path for id 'b'"),
        ("id,path,label\na,a.wav,x,extra\n", 2, "4 fields where the header (line 1) has 3"),
        ("id,path,label\na,a.wav\n", 2, "2 fields"),
        ("id,path,label,id\na,a.wav,x,b\n", 1, "column 'id' appears twice"),
    ],
)
def test_errors_name_the_line(tmp_path, text, line, words):
    m = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ManifestError) as ei:
        read_manifest(m)
    err = ei.value
    assert err.line == line
    assert err.path == str(m)
    assert f"{m}, line {line}: " in str(err)
    assert words in str(err)


def test_missing_and_empty_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="empty manifest"):
        read_manifest(_write(tmp_path / "empty.csv", "\n\n"))
    with pytest.raises(ManifestError, match="is a directory"):
        read_manifest(tmp_path)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"id,path,label\na,\xe9.wav,x\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(bad)


def test_header_only_manifest_is_empty(tmp_path):
    assert read_manifest(_write(tmp_path / "h.csv", "id,path,label,start,end\n")) == []


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_manifest_folder(tmp_path, monkeypatch):
    sub = tmp_path / "lists"
    sub.mkdir()
    m = _write(sub / "m.csv", "id,path,label\na,audio/a.wav,x\nb,../b.wav,y\n")
    monkeypatch.chdir("/")  # the working folder must not matter
    rows = read_manifest(m)
    assert rows[0].path == str(sub / "audio" / "a.wav")
    assert rows[1].path == str(tmp_path / "b.wav")


def test_relative_paths_resolve_against_data_root(tmp_path):
    m = _write(tmp_path / "m.csv", "id,path,label\na,fsdd/a.wav,x\nb,/abs/b.wav,y\n")
    data = tmp_path / "data"
    rows = read_manifest(m, data_root=data)
    assert rows[0].path == str(data / "fsdd" / "a.wav")
    assert rows[1].path == "/abs/b.wav"  # absolute paths ignore the data root


def test_relative_data_root_is_relative_to_cwd(tmp_path, monkeypatch):
    m = _write(tmp_path / "m.csv", "id,path,label\na,a.wav,x\n")
    monkeypatch.chdir(tmp_path)
    (row,) = read_manifest(m, data_root="corpus")
    assert row.path == str(tmp_path / "corpus" / "a.wav")
    assert os.path.isabs(row.path)


# --------------------------------------------------------------------------- writing


def test_write_then_read_round_trip(tmp_path):
    rows = [Row("u1", str(tmp_path / "d" / "a.wav"), "s1"),
            Row("u/2", str(tmp_path / "d" / "b c.wav"), "s,2", 0.1, 1.0000000000000002)]
    out = tmp_path / "out" / "m.csv"
    write_manifest(rows, out, root=tmp_path / "d")
    text = out.read_text()
    assert text.splitlines()[0] == "id,path,label,start,end"
    assert "a.wav" in text and str(tmp_path) not in text  # relative to root
    back = read_manifest(out, data_root=tmp_path / "d")
    assert [(r.id, r.path, r.label, r.start, r.end) for r in back] == [
        (r.id, r.path, r.label, r.start, r.end) for r in rows]
    assert not [p for p in out.parent.iterdir() if p.name != "m.csv"]  # no temp file left


def test_write_without_segments_has_three_columns(tmp_path):
    out = tmp_path / "m.csv"
    write_manifest([("a", "/x/a.wav", "s"), {"id": "b", "path": "/x/b.wav", "label": "t"}], out)
    assert out.read_text().splitlines() == ["id,path,label", "a,/x/a.wav,s", "b,/x/b.wav,t"]


def test_write_refuses_duplicates(tmp_path):
    with pytest.raises(ValueError, match="duplicate id 'a'"):
        write_manifest([("a", "/x", "s"), ("a", "/y", "s")], tmp_path / "m.csv")


# --------------------------------------------------------------------------- Kaldi


def _kaldi_dir(tmp_path: Path, wav_scp: str, utt2spk: str, segments: str | None = None) -> Path:
    d = tmp_path / "kaldi"
    d.mkdir()
    (d / "wav.scp").write_text(wav_scp)
    (d / "utt2spk").write_text(utt2spk)
    if segments is not None:
        (d / "segments").write_text(segments)
    return d


def test_from_kaldi_recordings(tmp_path):
    d = _kaldi_dir(tmp_path, "rec1 /data/rec 1.wav\nrec2 audio/rec2.flac\n\n", "rec1 alice\nrec2 bob\n")
    rows = from_kaldi(d, root=tmp_path)
    assert [(r.id, r.path, r.label, r.start, r.end, r.line) for r in rows] == [
        ("rec1", "/data/rec 1.wav", "alice", None, None, 1),
        ("rec2", str(tmp_path / "audio" / "rec2.flac"), "bob", None, None, 2),
    ]


def test_from_kaldi_segments(tmp_path):
    d = _kaldi_dir(
        tmp_path, "recA /d/a.wav\nrecB /d/b.wav\n",
        "seg1 alice\nseg2 alice\nseg3 bob\n",
        "seg1 recA 0.00 1.50\nseg2 recA 1.50 3.25\nseg3 recB 2 -1\n",
    )
    rows = from_kaldi(d)
    assert [(r.id, r.path, r.label, r.start, r.end) for r in rows] == [
        ("seg1", "/d/a.wav", "alice", 0.0, 1.5),
        ("seg2", "/d/a.wav", "alice", 1.5, 3.25),
        ("seg3", "/d/b.wav", "bob", 2.0, None),
    ]


@pytest.mark.parametrize(
    "wav_scp, utt2spk, segments, file, line, words",
    [
        ("r1 /a.wav\nr2 sox /b.sph -t wav - |\n", "r1 s\nr2 s\n", None, "wav.scp", 2, "piped command"),
        ("r1 -\n", "r1 s\n", None, "wav.scp", 1, "stdin"),
        ("r1 /a.wav\nr2 /data/wav.ark:1234\n", "r1 s\nr2 s\n", None, "wav.scp", 2, "Kaldi archive"),
        ("r1\n", "r1 s\n", None, "wav.scp", 1, "expected '<recording-id> <path>'"),
        ("r1 /a.wav\nr1 /b.wav\n", "r1 s\n", None, "wav.scp", 2, "duplicate recording id 'r1'"),
        ("r1 /a.wav\nr2 /b.wav\n", "r1 s\n", None, "wav.scp", 2, "'r2' has no speaker"),
        ("r1 /a.wav\n", "r1 s x\n", None, "utt2spk", 1, "expected '<utterance-id> <speaker-id>'"),
        ("r1 /a.wav\n", "s1 a\n", "s1 r9 0 1\n", "segments", 1, "recording 'r9' is not in"),
        ("r1 /a.wav\n", "s1 a\n", "s1 r1 2 1\n", "segments", 1, "end=1 is not after start=2"),
        ("r1 /a.wav\n", "s1 a\n", "s1 r1 x 1\n", "segments", 1, "start='x' is not a number"),
        ("r1 /a.wav\n", "s1 a\n", "s1 r1 0 1\ns2 r1 1 2\n", "segments", 2, "'s2' has no speaker"),
    ],
)
def test_from_kaldi_errors_name_file_and_line(tmp_path, wav_scp, utt2spk, segments, file, line, words):
    d = _kaldi_dir(tmp_path, wav_scp, utt2spk, segments)
    with pytest.raises(ManifestError) as ei:
        from_kaldi(d)
    assert ei.value.path == str(d / file)
    assert ei.value.line == line
    assert words in str(ei.value)


def test_from_kaldi_missing_files(tmp_path):
    with pytest.raises(ManifestError, match="no such folder"):
        from_kaldi(tmp_path / "none")
    d = tmp_path / "k"
    d.mkdir()
    (d / "wav.scp").write_text("r /a.wav\n")
    with pytest.raises(ManifestError, match="utt2spk.*missing"):
        from_kaldi(d)


def test_cli_from_kaldi(tmp_path, capsys):
    from gmmspeech.cli import main

    d = _kaldi_dir(tmp_path, "recA /d/a.wav\n", "s1 alice\n", "s1 recA 0.5 2\n")
    out = tmp_path / "m.csv"
    assert main(["manifest", "from-kaldi", str(d), "--out", str(out)]) == 0
    assert "1 segments, 1 speakers" in capsys.readouterr().out
    assert out.read_text().splitlines() == ["id,path,label,start,end", "s1,/d/a.wav,alice,0.5,2.0"]
    assert main(["manifest", "from-kaldi", str(d)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "s1,/d/a.wav,alice,0.5,2.0"
    (d / "wav.scp").write_text("recA gunzip -c a.wav.gz |\n")
    assert main(["manifest", "from-kaldi", str(d)]) == 2
    assert "wav.scp, line 1" in capsys.readouterr().err


def test_cli_manifest_check(tmp_path, capsys):
    from gmmspeech.cli import main

    (tmp_path / "a.wav").write_bytes(b"x")
    m = _write(tmp_path / "m.csv", "id,path,label\na,a.wav,x\nb,b.wav,y\n")
    assert main(["manifest", "check", str(m)]) == 1
    cap = capsys.readouterr()
    assert "line 3" in cap.err and "b.wav" in cap.err
    assert "2 rows (0 segments), 2 labels, 1 missing files" in cap.out
    assert main(["manifest", "check", str(_write(tmp_path / "bad.csv", "id,path\n"))]) == 2


def _corpus_elsewhere(tmp_path):
    """A manifest with paths relative to a data root that is not the manifest's folder."""
    root = tmp_path / "corpus"
    (root / "spk1").mkdir(parents=True)
    (root / "spk1" / "a.wav").write_bytes(b"x")
    (root / "spk1" / "b.wav").write_bytes(b"x")
    lists = tmp_path / "lists"
    lists.mkdir()
    m = _write(lists / "m.csv", "id,path,label\na,spk1/a.wav,s\nb,spk1/b.wav,s\n")
    return root, lists, m


def test_missing_files_hint_names_the_folder_paths_were_resolved_against(tmp_path):
    from gmmspeech.corpus.manifest import missing_files_hint

    root, lists, m = _corpus_elsewhere(tmp_path)
    hint = missing_files_hint(m, read_manifest(m), data_root=None)
    assert "none of its 2 files exists" in hint
    assert str(lists) in hint and "--data-root" in hint
    other = tmp_path / "elsewhere"
    hint = missing_files_hint(m, read_manifest(m, data_root=other), data_root=other)
    assert f"under --data-root {other}" in hint
    # the right root, one file present, no rows or only absolute paths: nothing to say
    assert missing_files_hint(m, read_manifest(m, data_root=root), data_root=root) == ""
    (root / "spk1" / "a.wav").unlink()
    assert missing_files_hint(m, read_manifest(m, data_root=root), data_root=root) == ""
    assert missing_files_hint(m, [], data_root=None) == ""
    absolute = _write(lists / "abs.csv", f"id,path,label\na,{tmp_path / 'gone.wav'},s\n")
    assert missing_files_hint(absolute, read_manifest(absolute), data_root=None) == ""


def test_cli_forgotten_data_root_is_named(tmp_path, capsys):
    from gmmspeech.cli import main

    root, lists, m = _corpus_elsewhere(tmp_path)
    assert main(["manifest", "check", str(m)]) == 1
    err = capsys.readouterr().err
    assert f"relative paths resolve against the manifest's own folder ({lists})" in err
    assert "pass --data-root" in err
    assert main(["manifest", "check", str(m), "--data-root", str(root)]) == 0
    assert "--data-root" not in capsys.readouterr().err
    # features (no file is read: every one is missing) and train-ubm say the same
    assert main(["features", str(m), "--out", str(tmp_path / "st"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 files failed" in err and "pass --data-root" in err
    assert main(["train-ubm", str(m), "--out", str(tmp_path / "u.npz"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no usable file" in err and "pass --data-root" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_cli_manifest_that_is_a_pipe_is_not_called_a_folder(tmp_path, capsys):
    from gmmspeech.cli import main

    fifo = tmp_path / "m.csv"
    os.mkfifo(fifo)
    assert main(["features", str(fifo), "--out", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and "folder" not in err


# --------------------------------------------------------------------------- data_manifests


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_fsdd_manifests_follow_the_upstream_split():
    train = _csv_rows(MANIFESTS / "fsdd" / "speaker_train.csv")
    test = _csv_rows(MANIFESTS / "fsdd" / "speaker_test.csv")
    digits = _csv_rows(MANIFESTS / "fsdd" / "digits.csv")
    assert (len(train), len(test), len(digits)) == (2700, 300, 3000)
    for rows, lo, hi in ((train, 5, 49), (test, 0, 4)):
        for r in rows:
            digit, speaker, index = Path(r["path"]).stem.split("_")
            assert r["path"] == f"fsdd/recordings/{digit}_{speaker}_{index}.wav"
            assert r["label"] == speaker
            assert r["id"] == f"{speaker}_{digit}_{index}"
            assert lo <= int(index) <= hi
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in test)
    assert {r["label"] for r in train} == {r["label"] for r in test} == {
        "george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    for r in digits:
        digit, speaker, index = Path(r["path"]).stem.split("_")
        assert r["label"] == digit and r["id"] == f"{speaker}_{digit}_{index}"
    assert sorted(r["label"] for r in digits) == sorted(str(d) for d in range(10) for _ in range(300))


def test_librispeech_manifests_protocol():
    bg = _csv_rows(MANIFESTS / "librispeech" / "background.csv")
    enroll = _csv_rows(MANIFESTS / "librispeech" / "enroll.csv")
    test = _csv_rows(MANIFESTS / "librispeech" / "test.csv")
    assert len(bg) == 100 and len({r["label"] for r in bg}) == 10
    assert all(r["path"].startswith("librispeech/test-other/") for r in bg)
    assert len(enroll) == 126 and len({r["label"] for r in enroll}) == 126
    assert {r["label"] for r in test} == {r["label"] for r in enroll}
    assert {r["label"] for r in bg}.isdisjoint(r["label"] for r in enroll)
    ends = {}
    for r in enroll:
        assert r["path"].startswith("librispeech/train-clean-100/")
        assert r["label"] == Path(r["path"]).name.split("-")[0]
        assert float(r["start"]) == 0.0
        ends[r["path"]] = float(r["end"])
    by_path: dict[str, list[tuple[float, float]]] = {}
    for r in test:
        s, e = float(r["start"]), float(r["end"])
        assert e - s <= 3.0 + 1e-9
        by_path.setdefault(r["path"], []).append((s, e))
    for path, segs in by_path.items():
        segs.sort()
        assert segs[0][0] == pytest.approx(ends[path], abs=1e-4)  # tests start where enrolment ends
        for (_s0, e0), (s1, _e1) in zip(segs, segs[1:]):
            assert s1 == pytest.approx(e0, abs=1e-9)  # consecutive, non-overlapping
        assert all(e - s == pytest.approx(3.0) for s, e in segs[:-1])
        if len(segs) > 1:
            assert segs[-1][1] - segs[-1][0] >= 1.0


def test_data_manifests_point_at_existing_files(datasets_root):
    import soundfile as sf

    for name in ("fsdd/speaker_train.csv", "fsdd/speaker_test.csv", "fsdd/digits.csv",
                 "librispeech/background.csv", "librispeech/enroll.csv", "librispeech/test.csv"):
        rows = read_manifest(MANIFESTS / name, data_root=datasets_root)
        missing = [r.path for r in rows if not os.path.isfile(r.path)]
        assert not missing, f"{name}: {len(missing)} missing, e.g. {missing[:3]}"
    durations = {}
    for r in read_manifest(MANIFESTS / "librispeech" / "test.csv", data_root=datasets_root):
        if r.path not in durations:
            durations[r.path] = sf.info(r.path).duration
        assert r.end <= durations[r.path] + 1e-9
    enroll = read_manifest(MANIFESTS / "librispeech" / "enroll.csv", data_root=datasets_root)
    for r in enroll:
        assert r.end == pytest.approx(0.6 * sf.info(r.path).duration, abs=1e-4)


def test_malformed_csv_and_bare_carriage_returns(tmp_path):
    m = tmp_path / "cr.csv"
    m.write_bytes(b"id,path,label\ra,/a.wav,x\rb,/b.wav,y\r")
    assert [(r.id, r.line) for r in read_manifest(m)] == [("a", 2), ("b", 3)]
    m = _write(tmp_path / "huge.csv", 'id,path,label\na,b,c\nd,"' + "x" * 200_000 + '",e\n')
    with pytest.raises(ManifestError, match=r"line 3: malformed CSV \(field larger"):
        read_manifest(m)


def test_from_kaldi_keeps_relative_paths_relative(tmp_path):
    d = _kaldi_dir(tmp_path, "rec1 /data/a.wav\nrec2 audio/b.flac\n", "rec1 s\nrec2 t\n")
    rows = from_kaldi(d)
    assert [r.path for r in rows] == ["/data/a.wav", "audio/b.flac"]
    out = tmp_path / "m.csv"
    write_manifest(rows, out)
    back = read_manifest(out, data_root=tmp_path / "root")
    assert back[1].path == str(tmp_path / "root" / "audio" / "b.flac")
    assert back[0].path == "/data/a.wav"
    rows = from_kaldi(d, wav_root=tmp_path / "w")
    assert rows[1].path == str(tmp_path / "w" / "audio" / "b.flac")


def test_from_kaldi_metadata_columns(tmp_path):
    d = _kaldi_dir(tmp_path, "u1 a/1.flac\nu2 a/2.flac\nu3 b/3.flac\n", "u1 s1\nu2 s1\nu3 s2\n")
    (d / "text").write_text("u1 WE CALL IT BEAR\nu2 THREE, TWO\n")
    (d / "spk2gender").write_text("s1 m\ns2 f\n")
    (d / "spk2age").write_text("s1 6\ns2 21\n")
    rows = from_kaldi(d)
    assert [dict(r.extra) for r in rows] == [
        {"gender": "m", "age": "6", "text": "WE CALL IT BEAR"},
        {"gender": "m", "age": "6", "text": "THREE, TWO"},
        {"gender": "f", "age": "21", "text": ""},
    ]
    out = tmp_path / "m.csv"
    write_manifest(rows, out)
    assert out.read_text().splitlines()[:3] == [
        "id,path,label,gender,age,text", "u1,a/1.flac,s1,m,6,WE CALL IT BEAR",
        'u2,a/2.flac,s1,m,6,"THREE, TWO"',
    ]
    back = read_manifest(out, data_root=tmp_path)
    assert [(r.id, r.label, r.extra["text"], r.extra["age"]) for r in back] == [
        ("u1", "s1", "WE CALL IT BEAR", "6"), ("u2", "s1", "THREE, TWO", "6"), ("u3", "s2", "", "21")]
    (d / "spk2age").write_text("s1\n")
    with pytest.raises(ManifestError) as ei:
        from_kaldi(d)
    assert ei.value.path == str(d / "spk2age") and ei.value.line == 1


def test_from_kaldi_real_data_dir_resolves_with_data_root(tmp_path, capsys, datasets_root, monkeypatch):
    """speechocean762's train/ is a real Kaldi data dir whose wav.scp paths are relative to
    the corpus folder: the converted manifest keeps them relative and checks clean with
    --data-root, whatever the current folder was at conversion."""
    from gmmspeech.cli import main

    kaldi = datasets_root / "speechocean762" / "train"
    if not kaldi.is_dir():
        pytest.skip(f"{kaldi} not found")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "so.csv"
    assert main(["manifest", "from-kaldi", str(kaldi), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "1000 recordings, 125 speakers" in said and "--data-root" in said
    rows = read_manifest(out, data_root=kaldi.parent)
    assert len(rows) == 1000 and all(os.path.isfile(r.path) for r in rows)
    assert {r.extra["gender"] for r in rows} == {"m", "f"}
    assert all(r.extra["text"] and r.extra["age"].isdigit() for r in rows)
    assert main(["manifest", "check", str(out), "--data-root", str(kaldi.parent)]) == 0
    assert "0 missing files" in capsys.readouterr().out
