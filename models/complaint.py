"""The complaint and severity heads: hard negatives, brand swaps, calibration, honest CV.

Data: the complaint tweets (``complaints/train.csv``: complaint 0/1, severity 0-4 for 2,757 of
them) and, as *hard negatives*, news headlines about companies and products
(``stories/news_headlines_dev.csv``), which are never complaints. Every text whose brand name
``models.brands`` recognises is added a second time with the name swapped for another brand, so
the heads cannot learn "Apple means news" or "Delta means complaint".

Cross-validation (``cross_validate``): five folds, complaints stratified, headlines grouped by
story (a whole story is held out, so a fold's headlines are not near-copies of training ones);
fold k's heads are fitted on everything outside fold k, including the swapped copies of those
rows only. The encoder never saw a complaint or a headline (it is fine-tuned on SemEval
sentiment alone), so refitting the heads per fold is an honest estimate.

Calibration: the balanced logistic regression says 0.5 for "as likely as not in a 50/50 mix".
``fit_calibration`` fits Platt scaling (a, b on the head's logit) to the out-of-fold logits,
weighting rows so the complaint share is ``CALIBRATION_SHARE`` — the share in the complaint
data's sample of tweets about companies — and headlines count as the news they are in a real
stream. The daemon's threshold (``classifier.complaint_threshold``, 0.5) then means "more likely a
complaint than not" in such a stream.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.brands import substitute_brands
from models.heads import Head

HEADLINES_CSV = Path("stories/news_headlines_dev.csv")
FOLDS = 5
SEED = 0
NO_LABEL = -1
# Complaints in complaints/train.csv (986 of 2,759): tweets to companies plus random tweets, the
# nearest thing in the data to a brand's mention stream.
CALIBRATION_SHARE = 986 / 2759

Features = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ComplaintSpec:
    """How the complaint (and severity) heads are fitted; stored in meta.json."""

    c: float = 0.01  # inverse L2 strength of both logistic regressions
    headline_weight: float = 0.25  # a headline counts this much of a tweet (3,235 vs 2,759)
    brand_swap: bool = True  # add a brand-swapped copy of each text naming a known brand
    calibrate: bool = True  # Platt scaling to CALIBRATION_SHARE (see module docstring)
    severity: bool = True  # fit the severity head (levels 0-4)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "logreg+negatives", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComplaintSpec:
        fields = {k: data[k] for k in asdict(cls()) if k in data}
        return cls(**fields)


@dataclass(frozen=True)
class ComplaintData:
    texts: list[str]
    labels: np.ndarray  # 0/1
    severity: np.ndarray  # 0-4, NO_LABEL when unknown
    headlines: list[str]
    stories: list[str]
    sha256: dict[str, str]

    def swapped(self) -> tuple[list[str], list[str]]:
        """Each text with its brand names swapped (fixed seed); equal to it when none."""
        rng = random.Random(SEED + 1)
        return (
            [substitute_brands(t, rng, 1.0) for t in self.texts],
            [substitute_brands(t, rng, 1.0) for t in self.headlines],
        )


def load(data_dir: Path, complaints_csv: Path) -> ComplaintData:
    raw = (data_dir / complaints_csv).read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines(keepends=True)))
    heads_raw = (data_dir / HEADLINES_CSV).read_bytes()
    heads = list(csv.DictReader(heads_raw.decode("utf-8").splitlines(keepends=True)))
    return ComplaintData(
        texts=[r["text"] for r in rows],
        labels=np.array([int(r["complaint"]) for r in rows], dtype=np.int64),
        severity=np.array(
            [int(r["severity"]) if r.get("severity", "") != "" else NO_LABEL for r in rows],
            dtype=np.int64,
        ),
        headlines=[r["title"] for r in heads],
        stories=[r["story"] for r in heads],
        sha256={
            str(complaints_csv): hashlib.sha256(raw).hexdigest(),
            str(HEADLINES_CSV): hashlib.sha256(heads_raw).hexdigest(),
        },
    )


@dataclass
class FeatureSet:
    """Features of the complaint tweets and headlines, and of their brand-swapped copies."""

    tweets: np.ndarray
    headlines: np.ndarray
    tweets_swapped: np.ndarray | None = None  # rows of swapped tweets (only those that changed)
    tweets_swapped_rows: np.ndarray | None = None
    headlines_swapped: np.ndarray | None = None
    headlines_swapped_rows: np.ndarray | None = None


def features_for(data: ComplaintData, spec: ComplaintSpec, embed: Features) -> FeatureSet:
    out = FeatureSet(embed(data.texts), embed(data.headlines))
    if spec.brand_swap:
        tweets, heads = data.swapped()
        t_rows = np.array([i for i, t in enumerate(tweets) if t != data.texts[i]], np.int64)
        h_rows = np.array([i for i, t in enumerate(heads) if t != data.headlines[i]], np.int64)
        out.tweets_swapped = embed([tweets[i] for i in t_rows]) if len(t_rows) else None
        out.tweets_swapped_rows = t_rows
        out.headlines_swapped = embed([heads[i] for i in h_rows]) if len(h_rows) else None
        out.headlines_swapped_rows = h_rows
    return out


def _training_rows(
    data: ComplaintData, fs: FeatureSet, spec: ComplaintSpec, tweets: np.ndarray,
    headlines: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, complaint labels, severity labels and weights for the given rows (indices),
    with their brand-swapped copies."""
    xs = [fs.tweets[tweets], fs.headlines[headlines]]
    ys = [data.labels[tweets], np.zeros(len(headlines), np.int64)]
    ss = [data.severity[tweets], np.zeros(len(headlines), np.int64)]
    ws = [np.ones(len(tweets)), np.full(len(headlines), spec.headline_weight)]
    if fs.tweets_swapped is not None and fs.tweets_swapped_rows is not None:
        keep = np.isin(fs.tweets_swapped_rows, tweets)
        rows = fs.tweets_swapped_rows[keep]
        xs.append(fs.tweets_swapped[keep])
        ys.append(data.labels[rows])
        ss.append(data.severity[rows])
        ws.append(np.ones(len(rows)))
    if fs.headlines_swapped is not None and fs.headlines_swapped_rows is not None:
        keep = np.isin(fs.headlines_swapped_rows, headlines)
        xs.append(fs.headlines_swapped[keep])
        ys.append(np.zeros(int(keep.sum()), np.int64))
        ss.append(np.zeros(int(keep.sum()), np.int64))
        ws.append(np.full(int(keep.sum()), spec.headline_weight))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ss), np.concatenate(ws)


def fit_logreg(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> Head:
    """Standardised, class-balanced logistic regression as a numpy ``Head``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=SEED)
    model.fit(scaler.transform(x), y, sample_weight=w)
    return Head(
        scaler.mean_.astype(np.float32),
        scaler.scale_.astype(np.float32),
        [model.coef_.T.copy()],
        [model.intercept_.copy()],
    )


LEVELS = 5  # severity 0-4
ABSENT = -30.0  # bias of a severity level no training row has: never predicted


def fit_levels(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> Head:
    """A multinomial logistic regression over the severity levels, always with one output per
    level 0-4 (a level missing from the training rows gets probability ~0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=SEED)
    model.fit(scaler.transform(x), y, sample_weight=w)
    weight = np.zeros((x.shape[1], LEVELS))
    bias = np.full(LEVELS, ABSENT)
    classes = [int(k) for k in model.classes_]
    if len(classes) == 2:  # one logit: softmax([0, z]) is sigmoid(z)
        bias[classes[0]] = 0.0
        weight[:, classes[1]], bias[classes[1]] = model.coef_[0], model.intercept_[0]
    else:
        for row, k in enumerate(classes):
            weight[:, k], bias[k] = model.coef_[row], model.intercept_[row]
    return Head(scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32),
                [weight], [bias])


def logit(head: Head, x: np.ndarray) -> np.ndarray:
    """The binary head's logit (before the sigmoid)."""
    z = (np.asarray(x, np.float32) - head.mean) / head.scale
    return (z @ head.weights[0] + head.biases[0])[:, 0].astype(np.float64)


def fit_calibration(
    logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, share: float = CALIBRATION_SHARE
) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` on out-of-fold logits; the tweets are weighted
    so complaints make up ``share`` of their total weight."""
    from sklearn.linear_model import LogisticRegression

    w = weights.astype(np.float64).copy()
    tweets = w == 1.0
    pos, neg = tweets & (labels == 1), tweets & (labels == 0)
    total = w[tweets].sum()
    w[pos] *= share * total / w[pos].sum()
    w[neg] *= (1 - share) * total / w[neg].sum()
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logits[:, None], labels, sample_weight=w)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def calibrated(head: Head, a: float, b: float) -> Head:
    """``head`` with Platt scaling folded into its weights (same arrays, same runtime)."""
    return Head(head.mean, head.scale, [head.weights[0] * a], [head.biases[0] * a + b])


@dataclass
class CVScores:
    complaint: np.ndarray  # out-of-fold P(complaint) per tweet
    headlines: np.ndarray  # out-of-fold P(complaint) per headline
    severity: np.ndarray  # out-of-fold severity probabilities per tweet, (n, 5)
    calibration: tuple[float, float] | None  # (a, b), fitted on the out-of-fold logits

    def summary(self, data: ComplaintData, threshold: float = 0.5) -> dict[str, float]:
        from scipy.stats import spearmanr
        from sklearn.metrics import f1_score

        from models.minilm import severity_levels

        out = {
            "complaint_macro_f1_cv5": round(
                float(f1_score(data.labels, self.complaint >= threshold, average="macro")), 4),
            "headlines_as_complaints_pct": round(100 * float(np.mean(self.headlines >= 0.5)), 2),
        }
        known = data.severity != NO_LABEL
        if known.any() and self.severity.any():
            levels = np.array(severity_levels(self.severity[known], self.complaint[known]))
            truth = data.severity[known]
            out["severity_macro_f1_cv5"] = round(
                float(f1_score(truth, levels, average="macro")), 4)
            out["severity_spearman_cv5"] = round(float(spearmanr(truth, levels).statistic), 4)
        return out


def fold_pairs(data: ComplaintData) -> list[tuple[np.ndarray, ...]]:
    """Fold k: (tweet train, tweet test, headline train, headline test) indices."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    tweets = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(
        np.zeros(len(data.labels)), data.labels)
    heads = GroupKFold(FOLDS).split(np.zeros(len(data.stories)), groups=data.stories)
    return [(a, b, c, d) for (a, b), (c, d) in zip(tweets, heads, strict=True)]


def cross_validate(data: ComplaintData, fs: FeatureSet, spec: ComplaintSpec) -> CVScores:
    n, m = len(data.labels), len(data.headlines)
    logits, head_logits = np.zeros(n), np.zeros(m)
    severity = np.zeros((n, 5))
    for tr, te, h_tr, h_te in fold_pairs(data):
        x, y, s, w = _training_rows(data, fs, spec, tr, h_tr)
        head = fit_logreg(x, y, w, spec.c)
        logits[te] = logit(head, fs.tweets[te])
        head_logits[h_te] = logit(head, fs.headlines[h_te])
        if spec.severity:
            known = s != NO_LABEL
            severity[te] = fit_levels(x[known], s[known], w[known], spec.c).predict_proba(
                fs.tweets[te])
    calibration = None
    if spec.calibrate:
        all_logits = np.r_[logits, head_logits]
        all_labels = np.r_[data.labels, np.zeros(m, np.int64)]
        weights = np.r_[np.ones(n), np.full(m, spec.headline_weight)]
        calibration = fit_calibration(all_logits, all_labels, weights)
        a, b = calibration
        logits, head_logits = a * logits + b, a * head_logits + b
    sigmoid = _sigmoid
    return CVScores(sigmoid(logits), sigmoid(head_logits), severity, calibration)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_heads(
    data: ComplaintData, fs: FeatureSet, spec: ComplaintSpec,
    calibration: tuple[float, float] | None,
) -> tuple[Head, Head | None]:
    """The shipped complaint head (calibrated) and severity head, fitted on all rows."""
    everything = np.arange(len(data.labels)), np.arange(len(data.headlines))
    x, y, s, w = _training_rows(data, fs, spec, *everything)
    complaint = fit_logreg(x, y, w, spec.c)
    if calibration is not None:
        complaint = calibrated(complaint, *calibration)
    severity = None
    if spec.severity:
        known = s != NO_LABEL
        severity = fit_levels(x[known], s[known], w[known], spec.c)
    return complaint, severity
