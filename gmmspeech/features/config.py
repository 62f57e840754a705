"""Feature configuration: one frozen, JSON-serialisable dataclass and three presets.

Presets
-------
``speech`` (default)
    16 kHz; 25 ms frames every 10 ms (no centre padding, Kaldi's ``snip_edges``);
    per-frame DC removal and pre-emphasis 0.97; symmetric Hamming window; FFT size the
    next power of two (512); power spectrum; 40 HTK-mel bands from 20 Hz to 7600 Hz;
    natural log; 20 cepstra (orthonormal DCT-II), cepstral lifter 22; c0 replaced by the
    raw frame log-energy; deltas and delta-deltas (:func:`librosa.feature.delta`, width 5);
    energy VAD (frames within 30 dB of the loudest, 5-frame smoothing); utterance mean
    and variance normalisation over the kept frames. 60 dimensions.
``kaldi``
    Kaldi's ``compute-mfcc-feats`` as configured by the usual ``conf/mfcc.conf``
    (``--use-energy=false``): samples on the int16 scale (``sample_scale=32768``, so the
    numbers match Kaldi's), 25/10 ms frames, ``snip_edges``, DC removal, pre-emphasis
    0.97 within each frame, Povey window, 512-point FFT, 23 mel bins from 20 Hz to
    Nyquist built as Kaldi builds them (triangles linear in HTK mel, no Nyquist bin,
    ``mel_bank="kaldi"``), natural log of the power with a ``FLT_EPSILON`` floor, 13
    cepstra, lifter 22, no energy. ``dither`` is 0 here (Kaldi's default is 1.0 on the
    int16 scale: ``replace(dither=1.0)`` adds the same amount, seeded by ``dither_seed``
    so runs repeat). No deltas, VAD or CMVN. 13 dimensions.
``librosa``
    :func:`librosa.feature.mfcc` defaults: 22050 Hz, ``n_fft=2048``, ``hop_length=512``,
    periodic Hann window, centre padding with zeros, power 2, 128 Slaney mel bands
    (Slaney area normalisation) from 0 Hz to Nyquist, ``power_to_db`` (amin 1e-10,
    top_db 80), 20 cepstra, no lifter. No deltas, VAD or CMVN. 20 dimensions.

Other sampling rates: frame lengths are in seconds, so ``FeatureConfig.preset("speech",
sample_rate=8000)`` analyses 8 kHz audio (e.g. FSDD) with 200-sample frames, a 256-point
FFT and the band edge below. Audio at another rate is resampled to ``sample_rate`` by
:func:`gmmspeech.features.extract`.

Band edge above Nyquist: ``fmax`` larger than 95 % of Nyquist is clipped to 0.95 x
Nyquist at the analysis rate (7600 Hz at 16 kHz stays, 8 kHz audio gets 3800 Hz);
``fmax=None`` means Nyquist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["FeatureConfig", "PRESETS", "FEATURE_VERSION"]

#: Bumped whenever the feature computation changes; part of :meth:`FeatureConfig.config_hash`.
FEATURE_VERSION = 1

_WINDOWS = ("hamming", "hann", "povey", "blackman", "rectangular")
_LOG_TYPES = ("log", "db")
_MEL_SCALES = ("htk", "slaney")
_MEL_NORMS = ("slaney", "none")
_MEL_BANKS = ("librosa", "kaldi")
_PAD_MODES = ("constant", "edge", "reflect")
_CMVN_MODES = ("none", "utterance", "sliding", "warping")
_VAD_REFERENCES = ("max", "mean")
_DELTA_MODES = ("interp", "nearest", "mirror", "constant", "wrap")
_FEATURE_TYPES = ("mfcc", "lfcc", "fbank", "plp")
_FILTER_SCALES = ("mel", "bark", "linear")
_PITCH_KINDS = ("none", "kaldi", "pyin")
_VAD_METHODS = ("energy", "gmm")
_FLT_EPSILON = 1.1920928955078125e-07


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines a feature matrix (frozen; JSON round-trips exactly).

    Times are in seconds, frequencies in Hz. ``win_length``, ``hop_length`` and
    ``n_fft`` in samples override the seconds when set (the ``librosa`` preset uses them).
    See the module docstring for the presets.
    """

    name: str = "speech"
    sample_rate: int = 16000
    # framing
    frame_length: float = 0.025
    frame_shift: float = 0.010
    win_length: int | None = None
    hop_length: int | None = None
    n_fft: int | None = None
    center: bool = False
    pad_mode: str = "constant"
    # per-frame processing
    sample_scale: float = 1.0
    dither: float = 0.0
    dither_seed: int = 0
    remove_dc: bool = True
    preemphasis: float = 0.97
    window: str = "hamming"
    periodic_window: bool = False
    # spectrum and filter bank
    power: float = 2.0
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float | None = 7600.0
    mel_scale: str = "htk"
    mel_norm: str = "none"
    mel_bank: str = "librosa"
    # vocal-tract-length normalisation: the mel bank's corners warped by Kaldi's
    # piecewise-linear function (1.0: none; gmmspeech.features.mfcc.vtln_warp_freq)
    vtln_warp: float = 1.0
    # speed perturbation (Kaldi's sox "speed"): the signal is resampled to play this many
    # times faster, scaling its duration by 1/speed and every frequency by speed
    # (gmmspeech.audio.speed_perturb); 1.0: none
    speed: float = 1.0
    log_type: str = "log"
    log_floor: float = _FLT_EPSILON
    top_db: float | None = None
    # feature type (see the module notes): cepstra of the log bank ("mfcc"; "lfcc" with
    # the linear bank), log filter-bank energies ("fbank") or PLP cepstra ("plp")
    feature_type: str = "mfcc"
    filter_scale: str = "mel"
    lpc_order: int = 12
    compress_factor: float = 0.33333
    rasta: bool = False
    # cepstra
    n_mfcc: int = 20
    lifter: float = 22.0
    use_energy: bool = True
    raw_energy: bool = True
    # dynamics
    deltas: int = 2
    delta_width: int = 5
    delta_mode: str = "interp"
    # shifted delta cepstra N-d-P-k (appended after the deltas), pitch (before the deltas)
    sdc: bool = False
    sdc_n: int = 7
    sdc_d: int = 1
    sdc_p: int = 3
    sdc_k: int = 7
    pitch: str = "none"
    pitch_fmin: float = 50.0
    pitch_fmax: float = 400.0
    # voice activity detection
    vad: bool = True
    vad_threshold_db: float = -30.0
    vad_reference: str = "max"
    vad_context: int = 2
    vad_proportion: float = 0.6
    vad_method: str = "energy"
    vad_gmm_components: int = 3
    # normalisation
    cmvn: str = "utterance"
    cmvn_window: int | None = None
    cmvn_norm_vars: bool = True
    cmvn_center: bool = True

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        def bad(field: str, value: Any, why: str) -> ValueError:
            return ValueError(f"FeatureConfig.{field} {why}, got {value!r}")

        def check_choice(field: str, choices: tuple[str, ...]) -> None:
            value = getattr(self, field)
            if value not in choices:
                raise bad(field, value, f"must be one of {', '.join(map(repr, choices))}")

        def check_int(field: str, lo: int, optional: bool = False) -> None:
            value = getattr(self, field)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise bad(field, value, f"must be an integer >= {lo}")

        def check_real(field: str, lo: float | None = None, hi: float | None = None,
                       optional: bool = False, strict_lo: bool = False) -> None:
            value = getattr(self, field)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(field, value, "must be a finite number")
            if lo is not None and (value <= lo if strict_lo else value < lo):
                raise bad(field, value, f"must be {'>' if strict_lo else '>='} {lo}")
            if hi is not None and value > hi:
                raise bad(field, value, f"must be <= {hi}")

        def check_bool(field: str) -> None:
            value = getattr(self, field)
            if not isinstance(value, bool):
                raise bad(field, value, "must be True or False")

        # ints given for float fields become floats (so JSON and the hash see one type)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if "float" in str(f.type) and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))

        if not isinstance(self.name, str) or not self.name:
            raise bad("name", self.name, "must be a non-empty string")
        check_int("sample_rate", 1)
        check_real("frame_length", 0.0, strict_lo=True)
        check_real("frame_shift", 0.0, strict_lo=True)
        check_int("win_length", 1, optional=True)
        check_int("hop_length", 1, optional=True)
        check_int("n_fft", 1, optional=True)
        if self.n_fft is not None and self.win_length is not None and self.win_length > self.n_fft:
            raise bad("win_length", self.win_length, f"must be <= n_fft ({self.n_fft})")
        check_bool("center")
        check_choice("pad_mode", _PAD_MODES)
        check_real("sample_scale", 0.0, strict_lo=True)
        check_real("dither", 0.0)
        check_int("dither_seed", 0)
        check_bool("remove_dc")
        check_real("preemphasis", 0.0, 1.0)
        check_choice("window", _WINDOWS)
        check_bool("periodic_window")
        check_real("power", 0.0, strict_lo=True)
        check_int("n_mels", 1)
        check_real("fmin", 0.0)
        check_real("fmax", 0.0, optional=True, strict_lo=True)
        if self.fmax is not None and self.fmax <= self.fmin:
            raise bad("fmax", self.fmax, f"must be greater than fmin ({self.fmin})")
        if self.fmin >= 0.5 * self.sample_rate:
            raise bad("fmin", self.fmin, f"must be below Nyquist ({0.5 * self.sample_rate} Hz)")
        check_choice("mel_scale", _MEL_SCALES)
        check_choice("mel_norm", _MEL_NORMS)
        check_choice("mel_bank", _MEL_BANKS)
        if self.mel_bank == "kaldi" and (self.mel_scale != "htk" or self.mel_norm != "none"):
            raise bad("mel_bank", self.mel_bank,
                      "needs mel_scale='htk' and mel_norm='none' (Kaldi's bank has no other form)")
        check_choice("log_type", _LOG_TYPES)
        check_real("log_floor", 0.0, strict_lo=True)
        check_real("top_db", 0.0, optional=True)
        check_choice("feature_type", _FEATURE_TYPES)
        check_choice("filter_scale", _FILTER_SCALES)
        if self.feature_type == "lfcc" and self.filter_scale != "linear":
            raise bad("filter_scale", self.filter_scale, "must be 'linear' for feature_type='lfcc'")
        if self.filter_scale == "linear" and self.feature_type not in ("lfcc", "fbank"):
            raise bad("filter_scale", self.filter_scale,
                      f"'linear' is for 'lfcc' or 'fbank', not feature_type={self.feature_type!r}")
        check_int("lpc_order", 1)
        check_real("compress_factor", 0.0, 1.0, strict_lo=True)
        check_bool("rasta")
        check_int("n_mfcc", 1)
        if self.feature_type == "plp":
            if self.n_mfcc > self.lpc_order + 1:
                raise bad("n_mfcc", self.n_mfcc, f"must be <= lpc_order + 1 ({self.lpc_order + 1}) for PLP")
        elif self.n_mfcc > self.n_mels:
            raise bad("n_mfcc", self.n_mfcc, f"must be <= n_mels ({self.n_mels})")
        check_real("lifter", 0.0)
        check_bool("use_energy")
        check_bool("raw_energy")
        check_int("deltas", 0)
        if self.deltas > 2:
            raise bad("deltas", self.deltas, "must be 0, 1 or 2")
        check_int("delta_width", 3)
        if self.delta_width % 2 == 0:
            raise bad("delta_width", self.delta_width, "must be odd")
        check_choice("delta_mode", _DELTA_MODES)
        check_bool("sdc")
        check_int("sdc_n", 1)
        check_int("sdc_d", 1)
        check_int("sdc_p", 1)
        check_int("sdc_k", 1)
        if self.sdc and self.sdc_n > self.n_static:
            raise bad("sdc_n", self.sdc_n, f"must be <= the static dimensions ({self.n_static})")
        check_choice("pitch", _PITCH_KINDS)
        check_real("pitch_fmin", 0.0, strict_lo=True)
        check_real("pitch_fmax", 0.0, strict_lo=True)
        if self.pitch_fmax <= self.pitch_fmin:
            raise bad("pitch_fmax", self.pitch_fmax, f"must be greater than pitch_fmin ({self.pitch_fmin})")
        check_bool("vad")
        check_real("vad_threshold_db", None, 0.0)
        check_choice("vad_reference", _VAD_REFERENCES)
        check_int("vad_context", 0)
        check_real("vad_proportion", 0.0, 1.0)
        check_choice("vad_method", _VAD_METHODS)
        check_int("vad_gmm_components", 2)
        if self.vad_gmm_components > 3:
            raise bad("vad_gmm_components", self.vad_gmm_components, "must be 2 or 3")
        check_choice("cmvn", _CMVN_MODES)
        check_int("cmvn_window", 2, optional=True)
        check_real("vtln_warp", 0.5, 2.0)
        check_real("speed", 0.5, 2.0)
        if self.vtln_warp != 1.0 and self.filter_scale != "mel":
            raise bad("vtln_warp", self.vtln_warp, f"warps mel banks only (filter_scale is {self.filter_scale!r})")
        check_bool("cmvn_norm_vars")
        check_bool("cmvn_center")

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FeatureConfig:
        """The named preset: ``"speech"`` (default), ``"kaldi"`` or ``"librosa"``.

        ``overrides`` change fields of the preset, e.g.
        ``FeatureConfig.preset("speech", sample_rate=8000)``.
        """
        try:
            changes = PRESETS[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown feature preset {name!r}; choose one of {', '.join(map(repr, PRESETS))}"
            ) from None
        config = cls(name=name, **changes)
        return config.replace(**overrides) if overrides else config

    def replace(self, **changes: Any) -> FeatureConfig:
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown FeatureConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON types only)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; missing fields take their defaults, unknown ones fail."""
        if not isinstance(d, dict):
            raise ValueError(f"FeatureConfig.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown FeatureConfig field(s): {', '.join(sorted(unknown))}")
        values = dict(d)
        # JSON has one number type: give integer-valued floats back to int fields
        for f in dataclasses.fields(cls):
            v = values.get(f.name)
            if isinstance(v, float) and v.is_integer() and "int" in str(f.type) and "float" not in str(f.type):
                values[f.name] = int(v)
        return cls(**values)

    def to_json(self, *, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, s: str) -> FeatureConfig:
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(s)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"FeatureConfig.from_json: not valid JSON ({exc})") from None
        return cls.from_dict(d)

    def config_hash(self) -> str:
        """16 hex characters identifying the features this configuration makes.

        Covers every field except ``name`` (two configurations that compute the same
        features share a hash) plus :data:`FEATURE_VERSION`.
        """
        d = self.to_dict()
        d.pop("name")
        # fields added after the first release count only when changed, so the hashes
        # (and the feature stores) of configurations that do not use them stay valid
        for f in dataclasses.fields(self):
            if f.name in _HASH_WHEN_CHANGED and d[f.name] == f.default:
                del d[f.name]
        d["_feature_version"] = FEATURE_VERSION
        # floats are written with repr precision; ints that equal floats stay distinct types
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    # ------------------------------------------------------------------ derived values
    @property
    def n_static(self) -> int:
        """Static dimensions per frame before pitch, deltas and SDC: ``n_mfcc`` cepstra,
        or ``n_mels`` (+1 with ``use_energy``) log filter-bank energies for ``fbank``."""
        if self.feature_type == "fbank":
            return self.n_mels + int(self.use_energy)
        return self.n_mfcc

    @property
    def n_pitch(self) -> int:
        """Pitch dimensions appended to the static features (3: POV, log-pitch, delta)."""
        return 0 if self.pitch == "none" else 3

    @property
    def n_features(self) -> int:
        """Output dimensions: ``(n_static + n_pitch) * (1 + deltas)`` plus
        ``sdc_n * sdc_k`` shifted deltas (``n_mfcc * (1 + deltas)`` for plain MFCC)."""
        n = (self.n_static + self.n_pitch) * (1 + self.deltas)
        return n + (self.sdc_n * self.sdc_k if self.sdc else 0)

    def win_samples(self, sr: int | None = None) -> int:
        """Analysis window length in samples at ``sr`` (default: the config's rate)."""
        sr = self.sample_rate if sr is None else sr
        if self.win_length is not None:
            return self.win_length
        if self.n_fft is not None and self.hop_length is not None:
            return self.n_fft
        return max(1, int(round(self.frame_length * sr)))

    def hop_samples(self, sr: int | None = None) -> int:
        """Frame shift in samples at ``sr``."""
        sr = self.sample_rate if sr is None else sr
        if self.hop_length is not None:
            return self.hop_length
        return max(1, int(round(self.frame_shift * sr)))

    def fft_size(self, sr: int | None = None) -> int:
        """FFT length: ``n_fft`` or the next power of two >= the window."""
        if self.n_fft is not None:
            return self.n_fft
        win = self.win_samples(sr)
        return 1 << max(0, (win - 1).bit_length())

    def mel_fmax(self, sr: int | None = None) -> float:
        """Upper band edge at ``sr``: ``fmax`` clipped to 0.95 x Nyquist, or Nyquist."""
        sr = self.sample_rate if sr is None else sr
        nyquist = 0.5 * sr
        if self.fmax is None:
            return nyquist
        return min(float(self.fmax), 0.95 * nyquist)

    def default_cmvn_window(self) -> int:
        """Window in frames for sliding CMVN (300) or feature warping (301)."""
        if self.cmvn_window is not None:
            return self.cmvn_window
        return 301 if self.cmvn == "warping" else 300


#: Fields added after the first release: :meth:`FeatureConfig.config_hash` leaves them
#: out while they hold their default, so existing configurations keep their hash.
_HASH_WHEN_CHANGED = frozenset({
    "feature_type", "filter_scale", "lpc_order", "compress_factor", "rasta",
    "sdc", "sdc_n", "sdc_d", "sdc_p", "sdc_k", "pitch", "pitch_fmin", "pitch_fmax",
    "vad_method", "vad_gmm_components", "vtln_warp", "speed",
})

PRESETS: dict[str, dict[str, Any]] = {
    "speech": {},
    "kaldi": dict(
        sample_rate=16000,
        frame_length=0.025,
        frame_shift=0.010,
        center=False,
        sample_scale=32768.0,
        dither=0.0,
        remove_dc=True,
        preemphasis=0.97,
        window="povey",
        periodic_window=False,
        power=2.0,
        n_mels=23,
        fmin=20.0,
        fmax=None,
        mel_scale="htk",
        mel_norm="none",
        mel_bank="kaldi",
        log_type="log",
        log_floor=_FLT_EPSILON,
        n_mfcc=13,
        lifter=22.0,
        use_energy=False,
        deltas=0,
        vad=False,
        cmvn="none",
    ),
    "librosa": dict(
        sample_rate=22050,
        win_length=None,
        hop_length=512,
        n_fft=2048,
        center=True,
        pad_mode="constant",
        dither=0.0,
        remove_dc=False,
        preemphasis=0.0,
        window="hann",
        periodic_window=True,
        power=2.0,
        n_mels=128,
        fmin=0.0,
        fmax=None,
        mel_scale="slaney",
        mel_norm="slaney",
        log_type="db",
        log_floor=1e-10,
        top_db=80.0,
        n_mfcc=20,
        lifter=0.0,
        use_energy=False,
        deltas=0,
        delta_width=9,
        vad=False,
        cmvn="none",
    ),
}

# Kaldi's compute-fbank-feats and compute-plp-feats: the kaldi preset's analysis
PRESETS["kaldi-fbank"] = dict(PRESETS["kaldi"], feature_type="fbank")
PRESETS["kaldi-plp"] = dict(PRESETS["kaldi"], feature_type="plp", use_energy=True, raw_energy=True,
                            lpc_order=12, compress_factor=0.33333)
# log10 of librosa.feature.melspectrogram through librosa.power_to_db (its defaults)
PRESETS["librosa-fbank"] = dict(PRESETS["librosa"], feature_type="fbank")
# the speech preset's analysis, deltas, VAD and CMVN with another front end
PRESETS["fbank"] = dict(feature_type="fbank", use_energy=False)
PRESETS["plp"] = dict(feature_type="plp", lpc_order=20)
PRESETS["lfcc"] = dict(feature_type="lfcc", filter_scale="linear", fmin=0.0)
PRESETS["rasta-plp"] = dict(feature_type="plp", lpc_order=20, rasta=True)
# language-ID style shifted delta cepstra: 7 cepstra (c0 = log-energy) + SDC 7-1-3-7 = 56 dims
PRESETS["sdc"] = dict(n_mfcc=7, deltas=0, sdc=True)
