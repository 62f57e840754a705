"""Manifests: CSV file lists with one audio file (or segment of one) per row.

A manifest is a UTF-8 CSV file whose header names at least ``id``, ``path`` and
``label``; the columns ``start`` and ``end`` (seconds) are optional, as are their cells.
Other columns are kept in :attr:`Row.extra` and otherwise ignored::

    id,path,label,start,end
    george_3_12,fsdd/recordings/3_george_12.wav,george,,
    19-198-0000_00,librispeech/train-clean-100/19-198-0000.flac,19,1.179,1.965

Relative paths resolve against ``data_root`` when given, else against the folder
holding the manifest; absolute paths are used as they are. Every problem raises
:class:`gmmspeech.errors.ManifestError` naming the manifest and the line.

:func:`from_kaldi` turns a Kaldi data directory (``wav.scp``, ``utt2spk`` and the optional
``segments``, ``text``, ``spk2gender`` and ``spk2age``) into rows; the optional files become
the extra columns ``text``, ``gender`` and ``age``, which :func:`write_manifest` writes after
the standard ones.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmmspeech.atomic import atomic_write_text
from gmmspeech.errors import ManifestError

__all__ = ["Row", "read_manifest", "write_manifest", "from_kaldi", "from_commonvoice", "COLUMNS",
           "missing_files_hint"]

#: The standard columns, in the order :func:`write_manifest` writes them.
COLUMNS = ("id", "path", "label", "start", "end")
REQUIRED = ("id", "path", "label")


@dataclass(frozen=True)
class Row:
    """One manifest entry.

    Attributes
    ----------
    id : str
        Unique utterance (or segment) identifier.
    path : str
        Absolute path of the audio file.
    label : str
        Class label (speaker, digit, ...); may be empty for unlabelled data.
    start, end : float or None
        Segment bounds in seconds (None: from the beginning / to the end of the file).
    line : int or None
        Line of the manifest the row came from (None for rows built in code).
    extra : dict
        Any further columns of the manifest, by name.
    """

    id: str
    path: str
    label: str
    start: float | None = None
    end: float | None = None
    line: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def duration(self) -> float | None:
        """``end - start`` when ``end`` is known (``start`` None counts as 0), else None."""
        if self.end is None:
            return None
        return self.end - (self.start or 0.0)


def _parse_time(value: str, column: str, path: str, line: int) -> float | None:
    value = value.strip()
    if value == "":
        return None
    try:
        t = float(value)
    except ValueError:
        raise ManifestError(path, line, f"{column}={value!r} is not a number") from None
    if not math.isfinite(t):
        raise ManifestError(path, line, f"{column}={value!r} is not a finite number")
    return t


def _resolve(p: str, base: str) -> str:
    p = os.path.expanduser(p)
    if not os.path.isabs(p):
        p = os.path.join(base, p)
    return os.path.normpath(os.path.abspath(p))


def missing_files_hint(manifest: str | os.PathLike, rows: Sequence[Row], *,
                       data_root: str | os.PathLike | None = None) -> str:
    """Where a manifest's paths were looked for, when not one of its files exists.

    A manifest whose relative paths all miss was almost always read against the wrong
    folder (``--data-root`` forgotten, or pointing elsewhere); this names that folder.

    Parameters
    ----------
    manifest : path-like
        The manifest the rows were read from.
    rows : sequence of Row
        Its rows, as :func:`read_manifest` returned them (paths resolved).
    data_root : path-like or None
        The ``data_root`` they were read with.

    Returns
    -------
    str
        One sentence, or ``""`` when some file exists, there are no rows, or no path
        was relative (every path is absolute, so no folder could fix it).
    """
    if not rows or any(os.path.exists(r.path) for r in rows):
        return ""
    mpath = os.fspath(manifest)
    if data_root is not None:
        base = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
    else:
        base = os.path.dirname(os.path.abspath(mpath))
    n_rel = sum(1 for r in rows if r.path.startswith(base.rstrip(os.sep) + os.sep))
    if not n_rel:
        return ""
    if data_root is None:
        return (f"{mpath}: none of its {len(rows)} files exists; relative paths resolve against "
                f"the manifest's own folder ({base}): pass --data-root with the folder they are "
                "relative to")
    return (f"{mpath}: none of its {len(rows)} files exists under --data-root {os.fspath(data_root)}; "
            "is that the folder the manifest's paths are relative to?")


def read_manifest(path: str | os.PathLike, *, data_root: str | os.PathLike | None = None) -> list[Row]:
    """Read a manifest CSV file.

    Parameters
    ----------
    path : path-like
        The manifest.
    data_root : path-like or None
        Folder that relative audio paths resolve against; default: the manifest's folder.

    Returns
    -------
    list of Row
        In file order, paths absolute.

    Raises
    ------
    ManifestError
        Missing file or column, empty ``id`` or ``path``, duplicate ``id``, a start/end
        that is not a number, a negative start, or ``end <= start``; the message names
        the line.
    """
    mpath = os.fspath(path)
    try:
        with open(mpath, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ManifestError(mpath, None, "no such file") from None
    except IsADirectoryError:
        raise ManifestError(mpath, None, "is a directory, not a manifest file") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(mpath, None, f"not UTF-8 text ({exc.reason})") from None
    if data_root is not None:
        base = os.path.abspath(os.path.expanduser(os.fspath(data_root)))
    else:
        base = os.path.dirname(os.path.abspath(mpath))

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 0
    rows: list[Row] = []
    seen: dict[str, int] = {}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ManifestError(mpath, max(1, reader.line_num), f"malformed CSV ({exc})") from None
        line = reader.line_num
        if not cells or all(c.strip() == "" for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            header_line = line
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ManifestError(
                    mpath, line,
                    f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"(the header must name id,path,label[,start,end]; found {','.join(header)})",
                )
            dup = sorted({c for c in header if header.count(c) > 1 and c})
            if dup:
                raise ManifestError(mpath, line, f"column {dup[0]!r} appears twice in the header")
            continue
        if len(cells) != len(header):
            raise ManifestError(
                mpath, line, f"{len(cells)} fields where the header (line {header_line}) has {len(header)}"
            )
        rec = dict(zip(header, cells))
        rid = rec["id"].strip()
        rpath = rec["path"].strip()
        if rid == "":
            raise ManifestError(mpath, line, "empty id")
        if rpath == "":
            raise ManifestError(mpath, line, f"empty path for id {rid!r}")
        if rid in seen:
            raise ManifestError(mpath, line, f"duplicate id {rid!r} (first on line {seen[rid]})")
        start = _parse_time(rec.get("start", ""), "start", mpath, line)
        end = _parse_time(rec.get("end", ""), "end", mpath, line)
        if start is not None and start < 0:
            raise ManifestError(mpath, line, f"negative start={start:g}")
        if end is not None and end <= (start if start is not None else 0.0):
            raise ManifestError(
                mpath, line, f"end={end:g} is not after start={start if start is not None else 0:g}"
            )
        seen[rid] = line
        extra = {k: v for k, v in rec.items() if k not in COLUMNS}
        rows.append(Row(rid, _resolve(rpath, base), rec["label"].strip(), start, end, line, extra))
    if header is None:
        raise ManifestError(mpath, None, "empty manifest (no header line id,path,label[,start,end])")
    return rows


def _fmt_time(t: float | None) -> str:
    return "" if t is None else repr(float(t))


def _as_fields(row: Any) -> tuple[str, str, str, float | None, float | None, Mapping[str, str]]:
    if isinstance(row, Mapping):
        get = row.get
        extra = {k: str(v) for k, v in row.items() if k not in COLUMNS and v is not None}
        return (str(row["id"]), os.fspath(row["path"]), str(get("label", "") or ""),
                get("start"), get("end"), extra)
    if isinstance(row, tuple) and not hasattr(row, "path"):
        rid, rpath, label, *rest = row
        start = rest[0] if len(rest) > 0 else None
        end = rest[1] if len(rest) > 1 else None
        return str(rid), os.fspath(rpath), str(label), start, end, {}
    return (str(row.id), os.fspath(row.path), str(row.label or ""),
            getattr(row, "start", None), getattr(row, "end", None),
            dict(getattr(row, "extra", None) or {}))


def format_manifest(rows: Iterable[Any], *, root: str | os.PathLike | None = None) -> str:
    """The CSV text :func:`write_manifest` writes (see there)."""
    recs = [_as_fields(r) for r in rows]
    with_times = any(r[3] is not None or r[4] is not None for r in recs)
    extra_cols: list[str] = []
    for r in recs:
        extra_cols += [k for k in r[5] if k not in extra_cols]
    base = None if root is None else os.path.abspath(os.path.expanduser(os.fspath(root)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*(COLUMNS if with_times else REQUIRED), *extra_cols])
    seen: set[str] = set()
    for rid, rpath, label, start, end, extra in recs:
        if rid == "" or rpath == "":
            raise ValueError(f"row with id={rid!r}, path={rpath!r}: id and path must not be empty")
        if rid in seen:
            raise ValueError(f"duplicate id {rid!r}")
        seen.add(rid)
        if base is not None and os.path.isabs(rpath):
            rpath = os.path.relpath(rpath, base)
        rpath = rpath.replace(os.sep, "/")
        row = [rid, rpath, label]
        if with_times:
            row += [_fmt_time(start), _fmt_time(end)]
        row += [extra.get(k, "") for k in extra_cols]
        w.writerow(row)
    return buf.getvalue()


def write_manifest(rows: Iterable[Any], path: str | os.PathLike, *,
                   root: str | os.PathLike | None = None) -> None:
    """Write rows as a manifest CSV file (atomically: temporary file + rename).

    Parameters
    ----------
    rows : iterable
        :class:`Row` objects, mappings with keys ``id, path, label[, start, end]`` (and
        any further keys, written as extra columns) or tuples ``(id, path, label[, start, end])``.
    path : path-like
        Output file.
    root : path-like or None
        Write absolute paths relative to this folder (as read back with ``data_root=root``);
        relative paths are written as they are. Default: write paths as given.

    Notes
    -----
    The ``start`` and ``end`` columns are written only when some row has a bound;
    times are written with full float precision. Extra columns (:attr:`Row.extra`) follow
    the standard ones in order of first appearance; a row without one has an empty cell.
    """
    atomic_write_text(os.fspath(path), format_manifest(rows, root=root))


# --------------------------------------------------------------------------- Kaldi


def _kaldi_lines(path: str) -> Iterable[tuple[int, list[str], str]]:
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                continue
            yield n, text.split(), text


def _kaldi_table(path: str, what: str) -> dict[str, tuple[str, int]]:
    """``<key> <value...>`` lines of an optional Kaldi table (``text``, ``spk2gender``...)."""
    table: dict[str, tuple[str, int]] = {}
    if not os.path.isfile(path):
        return table
    for n, parts, text in _kaldi_lines(path):
        if len(parts) < 2:
            raise ManifestError(path, n, f"expected '<{what}-id> <value>', got {text!r}")
        if parts[0] in table:
            raise ManifestError(path, n, f"duplicate {what} id {parts[0]!r}")
        table[parts[0]] = (text[len(parts[0]):].strip(), n)
    return table


def from_kaldi(data_dir: str | os.PathLike, *, wav_root: str | os.PathLike | None = None,
               root: str | os.PathLike | None = None) -> list[Row]:
    """Rows of a Kaldi data directory.

    Parameters
    ----------
    data_dir : path-like
        Folder with ``wav.scp`` (``<recording-id> <path>``), ``utt2spk``
        (``<utterance-id> <speaker>``) and optionally ``segments``
        (``<segment-id> <recording-id> <start> <end>``; ``end`` -1 means the end of the
        recording), ``text`` (``<utterance-id> <transcript>``), ``spk2gender`` and ``spk2age``
        (``<speaker> <value>``).
    wav_root : path-like or None
        Folder that relative paths of ``wav.scp`` resolve against now (the rows then hold
        absolute paths). Default: relative paths stay relative, to be resolved at use by
        ``data_root`` / ``--data-root`` like those of any manifest; absolute paths stay as
        they are.
    root : path-like or None
        Former name of ``wav_root``, still accepted.

    Returns
    -------
    list of Row
        One row per recording (no ``segments``) or per segment, labelled with the
        speaker from ``utt2spk``; ``line`` is the line of ``wav.scp`` or ``segments``;
        ``extra`` holds ``text``, ``gender`` and ``age`` where the data directory has them.

    Raises
    ------
    ManifestError
        A piped command or stdin (``-``) in ``wav.scp``, a malformed line, an unknown
        recording, an utterance missing from ``utt2spk``, or duplicate ids.
    """
    d = os.fspath(data_dir)
    if not os.path.isdir(d):
        raise ManifestError(d, None, "not a Kaldi data directory (no such folder)")
    if wav_root is not None and root is not None:
        raise ValueError("give wav_root or its former name root, not both")
    wav_root = wav_root if wav_root is not None else root
    base = None if wav_root is None else os.path.abspath(os.path.expanduser(os.fspath(wav_root)))
    scp = os.path.join(d, "wav.scp")
    u2s_path = os.path.join(d, "utt2spk")
    seg_path = os.path.join(d, "segments")
    for p in (scp, u2s_path):
        if not os.path.isfile(p):
            raise ManifestError(p, None, "missing (a Kaldi data directory needs wav.scp and utt2spk)")

    recordings: dict[str, tuple[str, int]] = {}
    for n, parts, text in _kaldi_lines(scp):
        if len(parts) < 2:
            raise ManifestError(scp, n, f"expected '<recording-id> <path>', got {text!r}")
        rid = parts[0]
        target = text[len(rid):].strip()
        if target.endswith("|"):
            raise ManifestError(
                scp, n,
                f"recording {rid!r} is a piped command ({target!r}); gmmspeech reads audio files "
                "only: convert the audio first (e.g. with sox/ffmpeg) and list plain paths",
            )
        if re.search(r"\.(ark|scp):\d+$", target):
            raise ManifestError(scp, n, f"recording {rid!r} points into a Kaldi archive ({target!r}); "
                                        "list plain audio files")
        if target == "-" or target.startswith("- "):
            raise ManifestError(scp, n, f"recording {rid!r} reads from stdin, which is not supported")
        if rid in recordings:
            raise ManifestError(scp, n, f"duplicate recording id {rid!r} (first on line {recordings[rid][1]})")
        if base is not None:
            target = _resolve(target, base)
        elif os.path.isabs(target):
            target = os.path.normpath(target)
        recordings[rid] = (target, n)

    utt2spk: dict[str, str] = {}
    for n, parts, text in _kaldi_lines(u2s_path):
        if len(parts) != 2:
            raise ManifestError(u2s_path, n, f"expected '<utterance-id> <speaker-id>', got {text!r}")
        if parts[0] in utt2spk:
            raise ManifestError(u2s_path, n, f"duplicate utterance id {parts[0]!r}")
        utt2spk[parts[0]] = parts[1]

    texts = _kaldi_table(os.path.join(d, "text"), "utterance")
    genders = _kaldi_table(os.path.join(d, "spk2gender"), "speaker")
    ages = _kaldi_table(os.path.join(d, "spk2age"), "speaker")

    def extra(utt: str) -> dict[str, str]:
        spk = utt2spk[utt]
        out: dict[str, str] = {}
        if genders:
            out["gender"] = genders.get(spk, ("", 0))[0]
        if ages:
            out["age"] = ages.get(spk, ("", 0))[0]
        if texts:
            out["text"] = texts.get(utt, ("", 0))[0]
        return out

    rows: list[Row] = []
    if os.path.isfile(seg_path):
        seen: set[str] = set()
        for n, parts, text in _kaldi_lines(seg_path):
            if len(parts) != 4:
                raise ManifestError(
                    seg_path, n, f"expected '<segment-id> <recording-id> <start> <end>', got {text!r}"
                )
            sid, rec = parts[0], parts[1]
            if sid in seen:
                raise ManifestError(seg_path, n, f"duplicate segment id {sid!r}")
            seen.add(sid)
            if rec not in recordings:
                raise ManifestError(seg_path, n, f"recording {rec!r} is not in {scp}")
            if sid not in utt2spk:
                raise ManifestError(seg_path, n, f"segment {sid!r} has no speaker in {u2s_path}")
            start = _parse_time(parts[2], "start", seg_path, n)
            end = _parse_time(parts[3], "end", seg_path, n)
            if start is None or start < 0:
                raise ManifestError(seg_path, n, f"negative start={parts[2]}")
            if end is not None and end < 0:
                end = None  # Kaldi: -1 means "to the end of the recording"
            if end is not None and end <= start:
                raise ManifestError(seg_path, n, f"end={end:g} is not after start={start:g}")
            rows.append(Row(sid, recordings[rec][0], utt2spk[sid], start, end, n, extra(sid)))
    else:
        for rid, (rpath, n) in recordings.items():
            if rid not in utt2spk:
                raise ManifestError(scp, n, f"recording {rid!r} has no speaker in {u2s_path}")
            rows.append(Row(rid, rpath, utt2spk[rid], None, None, n, extra(rid)))
    return rows


#: Common Voice metadata columns kept as manifest columns (when the TSV has them).
COMMONVOICE_EXTRA = {"sentence": "text", "gender": "gender", "age": "age", "accents": "accents",
                     "locale": "locale"}


def from_commonvoice(folder: str | os.PathLike, *, tsv: str = "validated.tsv") -> list[Row]:
    """Rows of a corpus in the Mozilla Common Voice layout: ``folder/clips/*.mp3`` listed by
    ``folder/<tsv>`` (tab-separated, with at least the columns ``client_id``, ``path`` and
    ``sentence``; ``validated.tsv``, ``train.tsv``, ``dev.tsv`` ...).

    Each row: id = the clip's file name without extension, path = ``clips/<path>``
    (relative: use the manifest with ``data_root`` / ``--data-root`` set to ``folder``),
    label = ``client_id`` (the speaker), and the columns ``text`` (the sentence), ``gender``,
    ``age``, ``accents`` and ``locale`` where the TSV has them.

    Raises
    ------
    ManifestError
        The TSV is missing or lacks a required column (naming the file and the columns it
        has), a line has too few cells, or two lines name the same clip.
    """
    path = os.path.join(os.fspath(folder), tsv)
    if not os.path.isfile(path):
        raise ManifestError(path, None, "not found (a Common Voice folder holds clips/ and "
                                        f"{tsv})")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ManifestError(path, 1, "empty file")
        missing = [c for c in ("client_id", "path", "sentence") if c not in header]
        if missing:
            raise ManifestError(path, 1, f"no column {', '.join(missing)} (columns: "
                                         f"{', '.join(header)})")
        col = {c: i for i, c in enumerate(header)}
        rows: list[Row] = []
        seen: dict[str, int] = {}
        for cells in reader:
            n = reader.line_num
            if not cells or cells == [""]:
                continue
            if len(cells) <= max(col["client_id"], col["path"]):
                raise ManifestError(path, n, f"expected {len(header)} tab-separated cells, got "
                                             f"{len(cells)}")
            clip = cells[col["path"]].strip()
            spk = cells[col["client_id"]].strip()
            if not clip or not spk:
                raise ManifestError(path, n, "empty path or client_id")
            cid = os.path.splitext(os.path.basename(clip))[0]
            if cid in seen:
                raise ManifestError(path, n, f"clip {clip!r} is listed twice (first on line "
                                             f"{seen[cid]})")
            seen[cid] = n
            extra = {name: cells[col[c]] for c, name in COMMONVOICE_EXTRA.items()
                     if c in col and col[c] < len(cells)}
            rows.append(Row(cid, "clips/" + clip, spk, None, None, n, extra))
    return rows
