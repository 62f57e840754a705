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
    log_type: str = "log"
    log_floor: float = _FLT_EPSILON
    top_db: float | None = None
    # cepstra
    n_mfcc: int = 20
    lifter: float = 22.0
    use_energy: bool = True
    raw_energy: bool = True
    # dynamics
    deltas: int = 2
    delta_width: int = 5
    delta_mode: str = "interp"
    # voice activity detection
    vad: bool = True
    vad_threshold_db: float = -30.0
    vad_reference: str = "max"
    vad_context: int = 2
    vad_proportion: float = 0.6
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
        check_int("n_mfcc", 1)
        if self.n_mfcc > self.n_mels:
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
        check_bool("vad")
        check_real("vad_threshold_db", None, 0.0)
        check_choice("vad_reference", _VAD_REFERENCES)
        check_int("vad_context", 0)
        check_real("vad_proportion", 0.0, 1.0)
        check_choice("cmvn", _CMVN_MODES)
        check_int("cmvn_window", 2, optional=True)
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
        d["_feature_version"] = FEATURE_VERSION
        # floats are written with repr precision; ints that equal floats stay distinct types
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    # ------------------------------------------------------------------ derived values
    @property
    def n_features(self) -> int:
        """Output dimensions: ``n_mfcc * (1 + deltas)``."""
        return self.n_mfcc * (1 + self.deltas)

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
