"""Sub-commands of the i-vector system, step by step (parsing and printing only).

``train-ivector`` (UBM + total-variability matrix -> extractor file), ``extract-ivectors``
(a manifest -> an i-vector file), ``train-backend`` (speaker-labelled i-vectors -> LDA /
PLDA / cosine back-end file) and ``score-ivectors`` (enrolment and test i-vectors -> a
score file that ``gmmspeech evaluate`` reads). The work is done by
:mod:`gmmspeech.backend`, imported inside the command functions.
"""

from __future__ import annotations

import os
import sys

from gmmspeech.cli.cmd_speaker import (
    _clean_errors,
    _config_for,
    _FeatureDir,
    _kept_stores,
    _no_usable_file,
    _par,
)
from gmmspeech.cli.common import (
    PRESET_NAMES,
    add_data_root_arg,
    add_max_duration_arg,
    add_parallel_args,
    add_preset_arg,
    parse_auto_int,
    parse_number,
)

_IVECTORS_KIND = "ivectors"


def _features_group(p, *, from_model: str) -> None:
    g = p.add_argument_group("features")
    add_preset_arg(g, default=None, help="feature preset (" + ", ".join(PRESET_NAMES) + "; default: the "
                   f"configuration saved in the {from_model}, else the speaker defaults)")
    g.add_argument("--features-dir", default=None, metavar="DIR",
                   help="feature stores folder, as for enroll and score: features (and the cached "
                        "Baum-Welch statistics) are reused from and added to DIR/<config hash> (or DIR "
                        f"itself when it is a store of the same configuration); files already in the "
                        f"stores the {from_model} records are read from there; default: a temporary folder")
    add_max_duration_arg(g)
    add_data_root_arg(g)


def register(sub) -> None:
    # ------------------------------------------------------------------ train-ivector
    p = sub.add_parser(
        "train-ivector", help="train an i-vector extractor (total variability) on a corpus",
        description="Train the total-variability matrix of an i-vector extractor by EM on the "
        "Baum-Welch statistics of SOURCE (a manifest or a feature store) under --ubm. A "
        "checkpoint is written after every iteration; --resume continues an interrupted run "
        "and reaches the same matrix.",
    )
    p.add_argument("source", metavar="MANIFEST_OR_STORE", nargs="+",
                   help="manifest CSV or feature store folder; several are pooled (e.g. background and "
                        "enrolment manifests, as speaker-id trains its total-variability matrix)")
    p.add_argument("--ubm", required=True, metavar="FILE", help="UBM model file (gmmspeech train-ubm)")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output extractor file (.npz)")
    p.add_argument("--rank", default="auto", metavar="R", help="i-vector dimension (default auto)")
    p.add_argument("--iterations", type=int, default=10, metavar="N", help="EM iterations (default 10)")
    p.add_argument("--top-c", type=int, default=None, metavar="C",
                   help="only the C best UBM components per frame in the statistics")
    p.add_argument("--full-ubm", action="store_true",
                   help="refine the UBM to full covariance first (3 EM iterations over SOURCE)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the initial matrix (default 0)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="checkpoint file (default OUT.ckpt.npz, removed after success)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    _features_group(p, from_model="UBM file")
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train_ivector)

    # ------------------------------------------------------------------ extract-ivectors
    p = sub.add_parser(
        "extract-ivectors", help="extract one i-vector per row of a manifest",
        description="Write the i-vectors (posterior means) of every row of MANIFEST, with the "
        "rows' ids and labels, to an .npz file (gmmspeech's safe model format).",
    )
    p.add_argument("--extractor", required=True, metavar="FILE", help="extractor file (train-ivector)")
    p.add_argument("--manifest", required=True, metavar="CSV")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output i-vector file (.npz)")
    p.add_argument("--covariances", action="store_true",
                   help="also write each i-vector's posterior covariance (R x R floats per row), "
                        "for score-ivectors --uncertainty")
    p.add_argument("--pooled", action="store_true",
                   help="one i-vector per label, extracted from the summed statistics of its rows (a "
                        "pooled speaker model, as speaker-id enrols by default: --enroll-ivectors "
                        "pooled); its id is the label. For the enrolment manifest")
    _features_group(p, from_model="extractor file")
    add_parallel_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_extract_ivectors)

    # ------------------------------------------------------------------ train-backend
    p = sub.add_parser(
        "train-backend", help="train an i-vector back-end (LDA, PLDA or cosine) on labelled i-vectors",
        description="Train length normalisation, LDA and PLDA (or WCCN for cosine scoring) on "
        "IVECTORS (extract-ivectors of a background manifest; its labels are the speakers).",
    )
    p.add_argument("ivectors", metavar="IVECTORS", nargs="+",
                   help="i-vector files (extract-ivectors); several are pooled, e.g. the background and "
                        "the enrolment i-vectors, as speaker-id trains its back-end by default")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output back-end file (.npz)")
    p.add_argument("--scoring", default="plda", choices=["plda", "cosine"], help="default plda")
    p.add_argument("--lda-dim", default=None, metavar="N", help="LDA dimension (default: no LDA)")
    p.add_argument("--plda", default="two-cov", choices=["two-cov", "simplified"], help="default two-cov")
    p.add_argument("--plda-rank", type=int, default=None, metavar="Q",
                   help="speaker-subspace rank of the simplified PLDA")
    p.add_argument("--plda-iterations", type=int, default=10, metavar="N", help="default 10")
    p.add_argument("--whiten-shrinkage", default="none", choices=["none", "ledoit-wolf", "oas"],
                   help="shrink the whitening covariance towards the scaled identity, weight "
                        "estimated from the data (default none)")
    p.set_defaults(func=_cmd_train_backend)

    # ------------------------------------------------------------------ score-ivectors
    p = sub.add_parser(
        "score-ivectors", help="score test i-vectors against enrolled speakers",
        description="One model per label of ENROLL (its i-vectors averaged); every test i-vector "
        "scored against every model (PLDA log-likelihood ratio or cosine). Writes a TSV "
        "(test_id, model, score, test_label) for 'gmmspeech evaluate'.",
    )
    p.add_argument("--backend-model", required=True, metavar="FILE", help="back-end file (train-backend)")
    p.add_argument("--enroll", required=True, metavar="IVECTORS")
    p.add_argument("--test", required=True, metavar="IVECTORS")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output scores.tsv")
    p.add_argument("--uncertainty", action="store_true",
                   help="PLDA scores that propagate the i-vectors' posterior covariances (both files "
                        "written by extract-ivectors --covariances), as speaker-id does by default")
    p.set_defaults(func=_cmd_score_ivectors)


# --------------------------------------------------------------------------- helpers
def _store_and_rows(args, manifest_or_store, config, fdir, cmd, reuse=()):
    """The features of a manifest (or of a feature store of ``config``): those in the stores
    ``reuse`` (recorded in the UBM or extractor file) are read from there, the rest extracted
    into the store of ``config`` under ``fdir`` (``--features-dir``: ``fdir/<config hash>``, or
    ``fdir`` itself when it is a store of that configuration, as enroll and score do).
    ``(features, ids, labels, bad)``."""
    from gmmspeech.cli.cmd_speaker import _open_features

    feats, rows, bad = _open_features(args, manifest_or_store, config, fdir, reuse=reuse, role=cmd,
                                      progress=not getattr(args, "quiet", True))
    return feats, [r.id for r in rows], {r.id: str(r.label) for r in rows}, bad


def _stats(ubm, feats, ids, top_c, args, progress):
    """Baum-Welch statistics of ``ids`` (in that order), read from the store that holds each
    (the statistics are cached in each store)."""
    from gmmspeech.backend.stats import BaumWelchStats, utterance_stats

    parts = [utterance_stats(ubm, st, ids=list(st.ids()), top_c=top_c, progress=progress, **_par(args))
             for st in feats.stores(ids)]
    st = parts[0] if len(parts) == 1 else BaumWelchStats.concat(parts)
    if list(st.ids) != list(ids):
        pos = {u: i for i, u in enumerate(st.ids)}
        st = st.subset([pos[u] for u in ids])
    return st


def _read_ivectors(path, *, covariances: bool = False):
    """``(ids, labels, vectors)`` of an i-vector file; with ``covariances`` also their
    posterior covariances (an error naming the file when it has none)."""
    from gmmspeech.errors import ModelFileError
    from gmmspeech.mixture import io as mio

    arrays, info = mio.load_arrays(path, _IVECTORS_KIND, required=("vectors",))
    ids, labels = info.get("ids"), info.get("labels")
    v = arrays["vectors"]
    if (not isinstance(ids, list) or not isinstance(labels, list) or v.ndim != 2
            or not (len(ids) == len(labels) == v.shape[0])):
        raise ModelFileError(os.fspath(path), "ids, labels and vectors do not agree")
    out = [str(i) for i in ids], [str(lab) for lab in labels], v.astype("float64")
    if not covariances:
        return out
    c = arrays.get("covariances")
    if c is None:
        raise ModelFileError(os.fspath(path), "no posterior covariances (write it with extract-ivectors "
                                              "--covariances)")
    if c.shape != (v.shape[0], v.shape[1], v.shape[1]):
        raise ModelFileError(os.fspath(path), f"covariances of shape {c.shape} do not match {v.shape[0]} "
                                              f"i-vectors of dimension {v.shape[1]}")
    return (*out, c.astype("float64"))


# --------------------------------------------------------------------------- commands
@_clean_errors
def _cmd_train_ivector(args) -> int:
    from gmmspeech.backend.extractor import IVectorExtractor, save_extractor
    from gmmspeech.cli.common import check_max_duration
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import recorded_stores

    check_max_duration(args)
    rank = parse_auto_int(args.rank, "--rank")
    progress = not args.quiet
    ubm = mio.load(args.ubm)
    config = _config_for(args, ubm)
    ckpt = args.checkpoint or (args.out + ".ckpt.npz")
    from gmmspeech.backend.stats import BaumWelchStats
    from gmmspeech.cli.cmd_speaker import _open_features, check_ids_across_sources

    with _FeatureDir(args.features_dir) as fdir:
        parts, bad, kept = [], [], []
        seen: dict[str, tuple] = {}
        for src in args.source:  # several sources are pooled, in order
            feats, rows, b = _open_features(args, src, config, fdir, reuse=recorded_stores(ubm),
                                            role="train-ivector", progress=progress)
            repeated = sum(r.id in seen for r in rows)
            check_ids_across_sources(src, rows, seen)
            if repeated:  # as speaker-id's TV training data (background + enrolment rows)
                print(f"gmmspeech train-ivector: {src}: {repeated} of {len(rows)} rows are in an earlier "
                      "source too; they count once per source, as in speaker-id", file=sys.stderr)
            bad += b
            if not rows:
                _no_usable_file("train-ivector", src, args.data_root)
                return 2
            parts.append((feats, [r.id for r in rows]))
            kept += _kept_stores(args, feats, fdir)
        ids = [i for _f, part in parts for i in part]
        if args.full_ubm:
            from gmmspeech.speaker.ubm import full_covariance_ubm

            ubm = full_covariance_ubm(ubm, [st for f, part in parts for st in f.stores(part)], max_iter=3,
                                      random_state=args.seed, progress=progress, **_par(args))
        st = BaumWelchStats.concat([_stats(ubm, f, part, args.top_c, args, progress) for f, part in parts])
        kept = list(dict.fromkeys(kept))
        ext = IVectorExtractor(rank=rank, n_iter=args.iterations, ubm=ubm, top_c=args.top_c,
                               random_state=args.seed, checkpoint=ckpt, resume=args.resume,
                               progress=progress, **_par(args))
        ext.fit(st)
    meta = {"role": "ivector-extractor", "source": os.pathsep.join(os.path.abspath(p) for p in args.source)}
    if config is not None:
        meta["feature_config"] = config.to_dict()
        meta["feature_config_hash"] = config.config_hash()
    if kept:  # extract-ivectors reads these features again
        meta["feature_stores"] = kept
    save_extractor(ext, args.out, metadata=meta)
    if args.checkpoint is None and os.path.exists(ckpt):
        os.unlink(ckpt)
    print(f"wrote {args.out}: rank {ext.rank_}, {len(ext.history_)} EM iterations on {len(ids)} utterances")
    return 1 if bad else 0


@_clean_errors
def _cmd_extract_ivectors(args) -> int:
    from gmmspeech.backend.extractor import load_extractor
    from gmmspeech.cli.common import check_max_duration
    from gmmspeech.mixture import io as mio
    from gmmspeech.speaker.pipeline import recorded_stores

    check_max_duration(args)
    progress = not args.quiet
    ext = load_extractor(args.extractor)
    saved = ext.metadata_.get("feature_config")

    class _M:  # what _config_for reads from a model: the saved configuration, the UBM's dimensions
        metadata_ = {"feature_config": saved} if isinstance(saved, dict) else {}
        means_ = ext.ubm_.means_
        path_ = os.fspath(args.extractor)

    config = _config_for(args, _M())
    with _FeatureDir(args.features_dir) as fdir:
        feats, ids, labels, bad = _store_and_rows(args, args.manifest, config, fdir, "extract-ivectors",
                                                  reuse=recorded_stores(ext))
        if not ids:
            _no_usable_file("extract-ivectors", args.manifest, args.data_root)
            return 2
        st = _stats(ext.ubm_, feats, ids, ext.top_c, args, progress)
        if args.pooled:  # one speaker model per label: its recordings' statistics summed
            unlabelled = [i for i in ids if not labels.get(i)]
            if unlabelled:
                raise ValueError(f"--pooled: {len(unlabelled)} row(s) of {args.manifest} have no label "
                                 f"(first: id {unlabelled[0]!r}); every row needs its speaker's label")
            st = st.pooled([labels[i] for i in ids])
            ids = list(st.ids)
            labels = {i: i for i in ids}
        ext.set_params(**_par(args))
        if args.covariances:
            vecs, covs = ext.posterior(st)
            arrays = {"vectors": vecs, "covariances": covs}
        else:
            vecs = ext.transform(st)
            arrays = {"vectors": vecs}
    mio.save_arrays(args.out, _IVECTORS_KIND, arrays,
                    {"ids": ids, "labels": [labels.get(i, "") for i in ids],
                     "extractor": os.path.abspath(args.extractor)})
    print(f"wrote {args.out}: {len(ids)} i-vectors of dimension {vecs.shape[1]}"
          + (" (one per label, pooled)" if args.pooled else "")
          + (f" ({len(bad)} file(s) skipped)" if bad else ""))
    return 1 if bad else 0


@_clean_errors
def _cmd_train_backend(args) -> int:
    import numpy as np

    from gmmspeech.backend.scoring import SpeakerBackend, save_backend

    parts = [_read_ivectors(path) for path in args.ivectors]
    dims = {v.shape[1] for _i, _l, v in parts}
    if len(dims) > 1:
        raise ValueError("the i-vector files have different dimensions ("
                         + ", ".join(f"{path}: {v.shape[1]}" for path, (_i, _l, v) in zip(args.ivectors, parts))
                         + "); give files of one extractor")
    labels = [lab for _i, lab_list, _v in parts for lab in lab_list]
    vecs = np.concatenate([v for _i, _l, v in parts])
    be = SpeakerBackend(scoring=args.scoring, lda_dim=parse_number(args.lda_dim), plda_model=args.plda,
                        plda_rank=args.plda_rank, plda_iter=args.plda_iterations,
                        whiten_shrinkage=args.whiten_shrinkage).fit(vecs, labels)
    save_backend(be, args.out, metadata={"trained_on": os.pathsep.join(os.path.abspath(p) for p in args.ivectors)})
    print(f"wrote {args.out}: {args.scoring} back-end on {len(labels)} i-vectors of "
          f"{len(set(labels))} speakers")
    return 0


@_clean_errors
def _cmd_score_ivectors(args) -> int:
    from gmmspeech.backend.scoring import load_backend
    from gmmspeech.speaker.pipeline import write_scores

    be = load_backend(args.backend_model)
    if args.uncertainty:
        _eids, elabels, evecs, ecov = _read_ivectors(args.enroll, covariances=True)
        tids, tlabels, tvecs, tcov = _read_ivectors(args.test, covariances=True)
        models, scores = be.score_trials(evecs, elabels, tvecs, enroll_covariances=ecov, test_covariances=tcov)
    else:
        _eids, elabels, evecs = _read_ivectors(args.enroll)
        tids, tlabels, tvecs = _read_ivectors(args.test)
        models, scores = be.score_trials(evecs, elabels, tvecs)
    write_scores(args.out, tids, tlabels, models, scores)
    print(f"wrote {args.out}: {len(tids)} tests x {len(models)} models")
    return 0
