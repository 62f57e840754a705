"""Speech-like multi-speaker corpora synthesised from a source-filter model.

The generator gives the toolkit a corpus with known speakers and no download: each
utterance is a sequence of syllables (vowels with formant transitions, fricatives,
stops with bursts, pauses) rendered as

* a **glottal source**: a Rosenberg (LF-like) glottal-flow pulse train, differentiated
  (glottal-flow derivative including lip radiation), with per-period jitter of the
  period and shimmer of the amplitude, following an intonation contour (declination
  plus word accents), mixed with pulsatile aspiration noise (breathiness);
* a **vocal tract**: five cascaded two-pole (Klatt) resonators whose frequencies follow
  the vowel targets, scaled by the speaker's vocal-tract length and personal per-formant
  deviations, updated every 5 ms (time-varying cascade with carried filter state);
* **unvoiced** sounds: noise through a fricative resonator (/s/, /sh/, /f/) or through
  the vocal tract (/h/), and stop bursts;
* a **session**: random gain, a mild random channel tilt and additive background noise
  at a random signal-to-noise ratio, so that utterances of one speaker differ.

Speakers differ in mean pitch and pitch range, vocal-tract length (formant scaling),
personal formant offsets and a personal vowel space (accent), formant bandwidths,
jitter, shimmer, open quotient, breathiness and speaking rate, all drawn from overlapping distributions: the speakers of a corpus are
separable but not trivially so.

Everything is deterministic given the seed: utterance ``j`` of speaker ``i`` uses the
random stream ``default_rng([seed, i, j])``, so corpora can be generated in parallel
and in any order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "VOWELS",
    "SpeakerProfile",
    "SynthUtterance",
    "random_speakers",
    "glottal_source",
    "resonator_sos",
    "formant_filter",
    "synth_utterance",
    "synth_corpus",
]

# Average adult male formants F1-F3 (Hz) after Peterson & Barney (1952) / Hillenbrand et al.
# (1995); F4 and F5 are set to typical values. Speakers scale these.
VOWELS: dict[str, tuple[float, float, float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0, 3500.0, 4500.0),
    "I": (390.0, 1990.0, 2550.0, 3500.0, 4500.0),
    "E": (530.0, 1840.0, 2480.0, 3500.0, 4500.0),
    "ae": (660.0, 1720.0, 2410.0, 3500.0, 4500.0),
    "a": (730.0, 1090.0, 2440.0, 3500.0, 4500.0),
    "O": (570.0, 840.0, 2410.0, 3500.0, 4500.0),
    "U": (440.0, 1020.0, 2240.0, 3500.0, 4500.0),
    "u": (300.0, 870.0, 2240.0, 3500.0, 4500.0),
    "V": (640.0, 1190.0, 2390.0, 3500.0, 4500.0),
    "er": (490.0, 1350.0, 1690.0, 3500.0, 4500.0),
}
_VOWEL_NAMES = tuple(VOWELS)
_VOWEL_TABLE = np.array([VOWELS[v] for v in _VOWEL_NAMES])
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0, 260.0])

# fricative centre frequency (Hz, adult male) and bandwidth
_FRICATIVES = {"s": (5200.0, 1400.0), "sh": (2900.0, 900.0), "f": (4000.0, 3500.0)}
_HOP_SECONDS = 0.005
#: Spread of the personal formant scale factors, of the personal vowel-space deviations
#: and of the token-to-token formant variation (relative standard deviations).
FORMANT_DEV_SD = 0.06
VOWEL_DEV_SD = 0.08
TOKEN_SD = 0.02


@dataclass(frozen=True)
class SpeakerProfile:
    """Voice parameters of one synthetic speaker.

    Attributes
    ----------
    name : str
        Speaker label.
    sex : str
        ``"f"`` or ``"m"`` (sets the ranges the other values were drawn from).
    f0 : float
        Mean fundamental frequency in Hz.
    f0_range : float
        Intonation range in semitones (declination span and accent height scale with it).
    vtl_scale : float
        Formant frequency scale (1 = average adult male; > 1 a shorter vocal tract).
    formant_dev : tuple of float
        Personal multiplicative deviation of F1..F5 (e.g. 1.04 raises that formant by 4 %).
    bandwidth_scale : float
        Scale of the formant bandwidths.
    jitter : float
        Relative standard deviation of consecutive glottal periods.
    shimmer : float
        Relative standard deviation of consecutive pulse amplitudes.
    open_quotient : float
        Fraction of the glottal period the glottis is open.
    breathiness : float
        Level of aspiration noise relative to the voiced source.
    rate : float
        Speaking-rate factor (> 1 faster, shorter segments).
    vowel_dev : tuple of tuple of float
        Personal multiplicative deviation of F1..F3 of each vowel of :data:`VOWELS` (in
        that order): the speaker's own vowel space (accent). Empty: none.
    """

    name: str
    sex: str
    f0: float
    f0_range: float
    vtl_scale: float
    formant_dev: tuple[float, float, float, float, float]
    bandwidth_scale: float
    jitter: float
    shimmer: float
    open_quotient: float
    breathiness: float
    rate: float
    vowel_dev: tuple[tuple[float, float, float], ...] = ()

    def to_dict(self) -> dict:
        """The profile as plain JSON-able types."""
        d = asdict(self)
        d["formant_dev"] = list(self.formant_dev)
        d["vowel_dev"] = [list(v) for v in self.vowel_dev]
        return d

    def vowel_targets(self, vowel: str) -> np.ndarray:
        """F1..F5 (Hz) of ``vowel`` for this speaker, before token-to-token variation."""
        f = np.asarray(VOWELS[vowel]) * self.vtl_scale * np.asarray(self.formant_dev)
        if self.vowel_dev:
            f[:3] *= np.asarray(self.vowel_dev[_VOWEL_NAMES.index(vowel)])
        return f


@dataclass
class SynthUtterance:
    """One synthesised utterance: ``id``, ``speaker`` label, ``index`` within the speaker,
    ``y`` (float32 samples), ``sr``, the ``snr_db`` it was mixed at and its ``text``
    (the segment string, e.g. ``"s-a-t|i-U"``)."""

    id: str
    speaker: str
    index: int
    y: np.ndarray
    sr: int
    snr_db: float
    text: str


def random_speakers(n_speakers: int, *, seed: int = 0, prefix: str = "spk") -> list[SpeakerProfile]:
    """Draw ``n_speakers`` voices, alternately female and male.

    Parameters
    ----------
    n_speakers : int
        Number of speakers (>= 1).
    seed : int
        Random seed; the same seed gives the same speakers.
    prefix : str
        Speaker names are ``f"{prefix}{i:02d}"``.

    Returns
    -------
    list of SpeakerProfile
    """
    n_speakers = _check_int("n_speakers", n_speakers, 1)
    rng = np.random.default_rng([int(seed), 0x5EED])
    speakers = []
    for i in range(n_speakers):
        sex = "f" if i % 2 == 0 else "m"
        if sex == "f":
            f0 = rng.uniform(165.0, 250.0)
            vtl = rng.uniform(1.08, 1.22)
        else:
            f0 = rng.uniform(90.0, 150.0)
            vtl = rng.uniform(0.90, 1.04)
        speakers.append(
            SpeakerProfile(
                name=f"{prefix}{i:02d}",
                sex=sex,
                f0=float(f0),
                f0_range=float(rng.uniform(2.0, 6.0)),
                vtl_scale=float(vtl),
                formant_dev=tuple(float(v) for v in rng.normal(1.0, FORMANT_DEV_SD, size=5)),
                bandwidth_scale=float(rng.uniform(0.8, 1.3)),
                jitter=float(rng.uniform(0.004, 0.02)),
                shimmer=float(rng.uniform(0.02, 0.08)),
                open_quotient=float(rng.uniform(0.45, 0.75)),
                breathiness=float(rng.uniform(0.02, 0.2)),
                rate=float(rng.uniform(0.85, 1.2)),
                vowel_dev=tuple(tuple(float(v) for v in row)
                                for row in rng.normal(1.0, VOWEL_DEV_SD, size=(len(VOWELS), 3))),
            )
        )
    return speakers


def glottal_source(
    f0: np.ndarray,
    *,
    sr: int,
    jitter: float = 0.01,
    shimmer: float = 0.04,
    open_quotient: float = 0.6,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A jittered, shimmered Rosenberg glottal pulse train and its derivative.

    Parameters
    ----------
    f0 : np.ndarray, shape (n_samples,)
        Instantaneous fundamental frequency in Hz, one value per output sample (> 0).
    sr : int
        Sample rate in Hz.
    jitter, shimmer : float
        Relative standard deviation of the period and of the amplitude, per period.
    open_quotient : float
        Open phase as a fraction of the period (in (0, 1)); 60 % of it is the opening.
    rng : np.random.Generator or None
        Random stream (a fresh default one when None).

    Returns
    -------
    flow : np.ndarray, shape (n_samples,)
        Glottal flow, >= 0.
    dflow : np.ndarray, shape (n_samples,)
        Its first difference times ``sr / 1000`` (glottal-flow derivative with lip
        radiation), the voiced excitation of the vocal tract.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    if f0.ndim != 1 or f0.size == 0:
        raise ValueError(f"f0 must be a non-empty 1-D array, got shape {f0.shape}")
    if not np.all(np.isfinite(f0)) or np.any(f0 <= 0):
        raise ValueError("f0 must hold finite frequencies > 0 Hz")
    if not 0.0 < open_quotient < 1.0:
        raise ValueError(f"open_quotient must be in (0, 1), got {open_quotient}")
    rng = np.random.default_rng() if rng is None else rng
    n = f0.size
    # pulse start times (in samples), period by period
    starts = [0.0]
    periods = []
    amps = []
    t = 0.0
    while t < n:
        period = sr / f0[min(int(t), n - 1)] * max(0.5, 1.0 + jitter * rng.standard_normal())
        periods.append(period)
        amps.append(max(0.1, 1.0 + shimmer * rng.standard_normal()))
        t += period
        starts.append(t)
    starts_a = np.asarray(starts[:-1])
    periods_a = np.asarray(periods)
    amps_a = np.asarray(amps)
    idx = np.arange(n, dtype=np.float64)
    k = np.searchsorted(starts_a, idx, side="right") - 1
    phase = (idx - starts_a[k]) / periods_a[k]
    rise = 0.6 * open_quotient
    fall = 0.4 * open_quotient
    flow = np.zeros(n)
    opening = phase < rise
    closing = (phase >= rise) & (phase < rise + fall)
    flow[opening] = 0.5 * (1.0 - np.cos(np.pi * phase[opening] / rise))
    flow[closing] = np.cos(0.5 * np.pi * (phase[closing] - rise) / fall)
    flow *= amps_a[k]
    dflow = np.diff(flow, prepend=0.0) * (sr / 1000.0)
    return flow, dflow


def resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray, sr: int) -> np.ndarray:
    """Second-order sections of cascaded two-pole (Klatt) resonators with unit DC gain.

    Parameters
    ----------
    freqs, bandwidths : array-like, shape (n_resonators,)
        Centre frequencies and -3 dB bandwidths in Hz (frequencies below Nyquist).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray, shape (n_resonators, 6)
        ``[b0, b1, b2, 1, a1, a2]`` per section, for :func:`scipy.signal.sosfilt`.
    """
    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    bandwidths = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    if freqs.shape != bandwidths.shape:
        raise ValueError(f"freqs {freqs.shape} and bandwidths {bandwidths.shape} differ in shape")
    if np.any(freqs <= 0) or np.any(freqs >= sr / 2) or np.any(bandwidths <= 0):
        raise ValueError(f"resonator frequencies must be in (0, {sr / 2}) Hz and bandwidths > 0")
    r = np.exp(-np.pi * bandwidths / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    a2 = r * r
    gain = 1.0 + a1 + a2
    sos = np.zeros((freqs.size, 6))
    sos[:, 0] = gain
    sos[:, 3] = 1.0
    sos[:, 4] = a1
    sos[:, 5] = a2
    return sos


def formant_filter(
    x: np.ndarray,
    formants: np.ndarray,
    bandwidths: np.ndarray,
    *,
    sr: int,
    hop: int,
) -> np.ndarray:
    """Filter ``x`` through a time-varying cascade of resonators.

    Parameters
    ----------
    x : np.ndarray, shape (n_samples,)
        Excitation.
    formants : np.ndarray, shape (n_blocks, n_formants)
        Resonance frequencies for each block of ``hop`` samples
        (``n_blocks = ceil(n_samples / hop)``).
    bandwidths : np.ndarray, shape (n_formants,) or (n_blocks, n_formants)
        Bandwidths in Hz.
    sr : int
        Sample rate.
    hop : int
        Samples per block; the coefficients change between blocks, the filter state is kept.

    Returns
    -------
    np.ndarray, shape (n_samples,)
    """
    from scipy.signal import sosfilt

    x = np.asarray(x, dtype=np.float64)
    formants = np.asarray(formants, dtype=np.float64)
    n_blocks = -(-x.size // hop)
    if formants.shape[0] != n_blocks:
        raise ValueError(f"formants has {formants.shape[0]} blocks, expected {n_blocks}")
    bw = np.broadcast_to(np.asarray(bandwidths, dtype=np.float64), formants.shape)
    formants = np.minimum(formants, 0.47 * sr)
    sos = resonator_sos(formants.ravel(), bw.ravel(), sr).reshape(n_blocks, formants.shape[1], 6)
    y = np.empty_like(x)
    zi = np.zeros((formants.shape[1], 2))
    for b in range(n_blocks):
        y[b * hop:(b + 1) * hop], zi = sosfilt(sos[b], x[b * hop:(b + 1) * hop], zi=zi)
    return y


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _ramp(n: int, n_ramp: int) -> np.ndarray:
    """A segment envelope with raised-cosine onset and offset."""
    env = np.ones(n)
    n_ramp = min(n_ramp, n // 2)
    if n_ramp > 0:
        w = 0.5 * (1.0 - np.cos(np.pi * np.arange(n_ramp) / n_ramp))
        env[:n_ramp] = w
        env[n - n_ramp:] = w[::-1]
    return env


def _plan(speaker: SpeakerProfile, duration: float, rng: np.random.Generator):
    """Segments ``(kind, label, seconds)`` of one utterance, words separated by pauses."""
    rate = speaker.rate
    segs = [("sil", "", rng.uniform(0.12, 0.25))]
    total = segs[0][2]
    words = []
    while total < duration - 0.15:
        word = []
        for _ in range(rng.integers(1, 4)):
            onset = rng.choice(["", "s", "sh", "f", "h", "stop", "stop"], p=[0.3, 0.15, 0.1, 0.1, 0.1, 0.125, 0.125])
            if onset == "stop":
                segs.append(("sil", "", rng.uniform(0.03, 0.06) / rate))
                segs.append(("burst", "t", rng.uniform(0.008, 0.02)))
                word.append("t")
            elif onset:
                segs.append(("fric" if onset != "h" else "asp", onset, rng.uniform(0.06, 0.13) / rate))
                word.append(onset)
            vowel = _VOWEL_NAMES[rng.integers(len(_VOWEL_NAMES))]
            segs.append(("vowel", vowel, rng.uniform(0.08, 0.22) / rate))
            word.append(vowel)
        words.append("-".join(word))
        segs.append(("sil", "", rng.uniform(0.05, 0.2) / rate))
        total = sum(s[2] for s in segs)
    segs.append(("sil", "", rng.uniform(0.1, 0.2)))
    return segs, "|".join(words)


def synth_utterance(
    speaker: SpeakerProfile,
    *,
    sr: int = 16000,
    duration: float = 2.0,
    snr_db: float | tuple[float, float] = (15.0, 30.0),
    seed: int | np.random.Generator | list | None = None,
    return_text: bool = False,
):
    """Synthesise one utterance of ``speaker``.

    Parameters
    ----------
    speaker : SpeakerProfile
        The voice.
    sr : int
        Sample rate in Hz (>= 8000; resonances above 0.47 * sr are clipped).
    duration : float
        Approximate speech duration in seconds (whole words are kept, so the result may
        run a little longer).
    snr_db : float or (low, high)
        Signal-to-noise ratio of the additive background noise, fixed or drawn uniformly.
    seed : int, sequence, Generator or None
        Random stream of this utterance.
    return_text : bool
        Also return the segment string.

    Returns
    -------
    y : np.ndarray, float32, shape (n_samples,)
        Peak-normalised (random peak in [0.3, 0.9]) waveform.
    snr : float
        The signal-to-noise ratio used, in dB.
    text : str
        Only when ``return_text``.
    """
    sr = _check_int("sr", sr, 8000)
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    segs, text = _plan(speaker, float(duration), rng)
    lengths = np.maximum(1, np.round(np.array([s[2] for s in segs]) * sr).astype(int))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    n = int(bounds[-1])
    hop = max(1, int(round(_HOP_SECONDS * sr)))
    n_blocks = -(-n // hop)
    block_t = (np.arange(n_blocks) + 0.5) * hop

    # speaker-scaled vowel targets with a little token-to-token variation
    anchors_t, anchors_f = [], []
    voiced_env = np.zeros(n)
    asp_env = np.zeros(n)
    fric = np.zeros(n)
    for (kind, label, _), a, b in zip(segs, bounds[:-1], bounds[1:]):
        m = b - a
        if kind == "vowel":
            target = speaker.vowel_targets(label) * rng.normal(1.0, TOKEN_SD, size=5)
            anchors_t += [a + 0.3 * m, b - 0.3 * m]
            anchors_f += [target, target]
            voiced_env[a:b] = _ramp(m, int(0.02 * sr)) * rng.uniform(0.7, 1.0)
        elif kind == "asp":
            asp_env[a:b] = _ramp(m, int(0.015 * sr)) * 0.5
        elif kind in ("fric", "burst"):
            fc, bw = _FRICATIVES["s" if kind == "burst" else label]
            fc = min(fc * math.sqrt(speaker.vtl_scale) * rng.normal(1.0, 0.04), 0.45 * sr)
            noise = rng.standard_normal(m + 64)
            from scipy.signal import sosfilt

            shaped = sosfilt(resonator_sos([fc], [bw], sr), noise)[64:]
            shaped = np.diff(shaped, prepend=shaped[0])  # remove the low end
            level = 0.25 if kind == "fric" else 0.5
            env = _ramp(m, int((0.015 if kind == "fric" else 0.002) * sr))
            if kind == "burst":
                env *= np.exp(-np.arange(m) / (0.004 * sr))
            fric[a:b] = level * env * shaped / (np.std(shaped) + 1e-12)
    if not anchors_t:  # cannot happen with duration > 0, kept for safety
        anchors_t, anchors_f = [0.0], [speaker.vowel_targets("V")]
    anchors_f = np.asarray(anchors_f)
    formants = np.stack([np.interp(block_t, anchors_t, anchors_f[:, k]) for k in range(5)], axis=1)
    # keep resonances ordered and below Nyquist
    formants = np.minimum(np.maximum.accumulate(formants + np.arange(5) * 1e-3, axis=1), 0.47 * sr)

    # intonation: declination + word accents + slow wander, in semitones
    t = np.arange(n) / sr
    span = speaker.f0_range
    semis = span * (0.5 - t / max(t[-1], 1e-9))
    wander = np.interp(t, np.linspace(0, t[-1], 8), rng.normal(0.0, 0.25 * span, size=8))
    semis = semis + wander
    for (kind, _, _), a, b in zip(segs, bounds[:-1], bounds[1:]):
        if kind == "vowel" and rng.random() < 0.35:
            c = 0.5 * (a + b) / sr
            semis = semis + 0.6 * span * np.exp(-0.5 * ((t - c) / 0.06) ** 2)
    f0 = speaker.f0 * 2.0 ** (semis / 12.0)

    flow, dflow = glottal_source(
        f0, sr=sr, jitter=speaker.jitter, shimmer=speaker.shimmer,
        open_quotient=speaker.open_quotient, rng=rng,
    )
    scale_d = np.std(dflow[voiced_env > 0]) if np.any(voiced_env > 0) else 1.0
    dflow = dflow / (scale_d + 1e-12)
    noise = rng.standard_normal(n)
    breath = speaker.breathiness * (0.3 + flow / (np.max(flow) + 1e-12))
    excitation = voiced_env * (dflow + breath * noise) + asp_env * noise
    bandwidths = _BANDWIDTHS * speaker.bandwidth_scale
    voice = formant_filter(excitation, formants, bandwidths, sr=sr, hop=hop)
    voice = voice / (np.std(voice[voiced_env > 0]) + 1e-12) if np.any(voiced_env > 0) else voice
    speech = voice + fric

    # session: channel tilt, background noise at the drawn SNR, gain
    tilt = rng.uniform(-0.5, 0.5)
    speech = speech - tilt * np.concatenate([[0.0], speech[:-1]])
    if isinstance(snr_db, tuple):
        snr = float(rng.uniform(*snr_db))
    else:
        snr = float(snr_db)
    active = (voiced_env + asp_env) > 0
    p_speech = np.mean(speech[active] ** 2) if np.any(active) else np.mean(speech**2)
    bg = rng.standard_normal(n)
    bg = bg - 0.9 * np.concatenate([[0.0], bg[:-1]]) * rng.uniform(-1.0, 1.0)
    bg *= math.sqrt(p_speech / (np.mean(bg**2) * 10.0 ** (snr / 10.0)))
    y = speech + bg
    y = y * (rng.uniform(0.3, 0.9) / (np.max(np.abs(y)) + 1e-12))
    y = y.astype(np.float32)
    if return_text:
        return y, snr, text
    return y, snr


def _one(args) -> SynthUtterance:
    speaker, i, j, seed, sr, duration, snr_db = args
    y, snr, text = synth_utterance(
        speaker, sr=sr, duration=duration, snr_db=snr_db, seed=[int(seed), i, j], return_text=True
    )
    return SynthUtterance(f"{speaker.name}-{j:03d}", speaker.name, j, y, sr, snr, text)


def synth_corpus(
    n_speakers: int = 20,
    n_utterances: int = 8,
    *,
    sr: int = 16000,
    duration: float | tuple[float, float] = 2.0,
    snr_db: float | tuple[float, float] = (15.0, 30.0),
    seed: int = 0,
    speakers: list[SpeakerProfile] | None = None,
    n_jobs: int = 1,
) -> tuple[list[SpeakerProfile], list[SynthUtterance]]:
    """Synthesise ``n_utterances`` utterances for each of ``n_speakers`` speakers.

    Parameters
    ----------
    n_speakers : int
        Number of speakers (ignored when ``speakers`` is given).
    n_utterances : int
        Utterances per speaker.
    sr : int
        Sample rate in Hz.
    duration : float or (low, high)
        Speech duration per utterance in seconds, fixed or drawn per utterance.
    snr_db : float or (low, high)
        Background-noise SNR per utterance.
    seed : int
        Seed of speakers and utterances: the same arguments give the same corpus.
    speakers : list of SpeakerProfile or None
        Voices to use instead of :func:`random_speakers`.
    n_jobs : int
        Worker processes (see :func:`gmmspeech.parallel.parallel_map`).

    Returns
    -------
    speakers : list of SpeakerProfile
    utterances : list of SynthUtterance
        Speaker-major order.
    """
    from gmmspeech.parallel import parallel_map

    n_utterances = _check_int("n_utterances", n_utterances, 1)
    if speakers is None:
        speakers = random_speakers(n_speakers, seed=seed)
    elif not speakers:
        raise ValueError("speakers must not be empty")
    dur_rng = np.random.default_rng([int(seed), 0xD0])
    jobs = []
    for i, spk in enumerate(speakers):
        for j in range(n_utterances):
            d = float(dur_rng.uniform(*duration)) if isinstance(duration, tuple) else float(duration)
            jobs.append((spk, i, j, seed, sr, d, snr_db))
    utts = parallel_map(_one, jobs, n_jobs=n_jobs)
    return speakers, utts
