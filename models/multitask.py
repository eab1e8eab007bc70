"""Multi-task fine-tuning: sentiment, complaint and complaint severity on one encoder.

The sentiment fine-tune (``models.finetune``) moves layers 3-4 towards how a tweet feels; the
complaint head then read those features through a logistic regression and took news headlines
("McDonald's sales slump for fourth-straight month") for grievances, because no negative example
looked like news. This stage continues from the sentiment-tuned layers and trains them on three
tasks at once, each with its own linear head on the same pooled layers:

- **sentiment** (3 classes): a fixed sample of SemEval train tweets, so the layers keep what the
  sentiment fine-tune taught them (class-balanced loss, as there);
- **complaint** (2 classes): the complaint tweets, plus *hard negatives*: news headlines about
  companies and products, which are never complaints;
- **severity** (5 classes, 0 = not a complaint, then Jin & Aletras's four levels): the complaint
  tweets that carry one, and the headlines as 0.

Brand names are swapped at random for other brands (``models.brands``) so no head learns that a
name means news or complaint. The complaint data is small, so its scores come from fine-tuning the
encoder inside each cross-validation fold (``cross_validate``): a fold is scored by layers and
heads that never saw it, and the headline folds hold out whole stories.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.brands import substitute_brands
from models.encoder import MiniLM
from models.finetune import (
    FinetuneSpec,
    SplitEncoder,
    _load_encoder,
    _tensors,
    bf16_supported,
    trained_only,
)
from models.text import normalize_tweet

TASKS = ("sentiment", "complaint", "severity")
CLASSES = {"sentiment": 3, "complaint": 2, "severity": 5}
NO_LABEL = -1  # a row without a label for a task (ignored by that task's loss)

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MultitaskSpec:
    epochs: float = 3.0
    lr: float = 5e-5
    head_lr: float = 1e-3
    batch_size: int = 32
    max_length: int = 64
    warmup: float = 0.06
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    sentiment_rows: int = 6000  # SemEval train tweets replayed (fixed sample)
    severity_weight: float = 0.5  # loss weight of the severity task
    brand_swap: float = 0.5  # chance that a brand name in a training text is swapped

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskData:
    """Texts and one label per task (``NO_LABEL`` where a text has none)."""

    texts: list[str]
    sentiment: np.ndarray
    complaint: np.ndarray
    severity: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: Sequence[int] | np.ndarray) -> TaskData:
        rows = np.asarray(rows, dtype=np.int64)
        return TaskData(
            [self.texts[i] for i in rows],
            self.sentiment[rows],
            self.complaint[rows],
            self.severity[rows],
        )

    @staticmethod
    def concat(parts: Sequence[TaskData]) -> TaskData:
        return TaskData(
            [t for p in parts for t in p.texts],
            np.concatenate([p.sentiment for p in parts]),
            np.concatenate([p.complaint for p in parts]),
            np.concatenate([p.severity for p in parts]),
        )

    @staticmethod
    def make(
        texts: Sequence[str],
        *,
        sentiment: Sequence[int] | np.ndarray | None = None,
        complaint: Sequence[int] | np.ndarray | None = None,
        severity: Sequence[int] | np.ndarray | None = None,
    ) -> TaskData:
        n = len(texts)

        def col(values: Sequence[int] | np.ndarray | None) -> np.ndarray:
            if values is None:
                return np.full(n, NO_LABEL, dtype=np.int64)
            return np.asarray(values, dtype=np.int64)

        return TaskData(list(texts), col(sentiment), col(complaint), col(severity))


class _MultiTuner(SplitEncoder):
    """Top encoder layers + one linear head per task, fed the frozen layers' cached output."""

    def __init__(self, encoder: MiniLM, ft: FinetuneSpec, dropout: float) -> None:
        super().__init__(encoder, ft)
        self.drop = nn.Dropout(dropout)
        dim = 384 * len(ft.pool_layers)
        self.heads = nn.ModuleDict({t: nn.Linear(dim, CLASSES[t]) for t in TASKS})

    def head(self, task: str) -> nn.Linear:
        return cast(nn.Linear, self.heads[task])

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, frozen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        h = self.drop(self.features(x, mask, frozen))
        return {t: head(h) for t, head in self.heads.items()}


class StateCache:
    """Hidden states after the frozen layers for every distinct text, computed once.

    Keyed by the normalised text, so every fold of a cross-validation (and the final fit) reuses
    the same states: the frozen layers are MiniLM's as shipped.
    """

    def __init__(self, ft: FinetuneSpec) -> None:
        self.ft = ft
        encoder, self.tokenizer = _load_encoder(ft)
        self.model = _MultiTuner(encoder, ft, 0.0)
        self.states: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def add(self, keys: Sequence[str], log: Log | None = None, batch: int = 128) -> None:
        """Cache the states of ``keys`` (texts already normalised: ``normalize_tweet``)."""
        todo = [t for t in dict.fromkeys(keys) if t not in self.states]
        if not todo:
            return
        started = time.perf_counter()
        ids = [e.ids for e in self.tokenizer.encode_batch(todo)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            t, m = _tensors(ids, rows)
            x, pooled = self.model.frozen_states(t, m)
            for r, i in enumerate(rows):
                n = len(ids[i])
                self.states[todo[i]] = (x[r, :n].to(torch.float16).clone(), pooled[r].clone())
        if log:
            log(f"cached {len(todo)} texts in {time.perf_counter() - started:.0f}s")

    def batch(self, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        items = [self.states[k] for k in keys]
        width = max(s.shape[0] for s, _ in items)
        x = torch.zeros((len(items), width, 384))
        m = torch.zeros((len(items), width), dtype=torch.bool)
        for r, (s, _) in enumerate(items):
            x[r, : s.shape[0]] = s.float()
            m[r, : s.shape[0]] = True
        return x, m, torch.stack([p for _, p in items])

    def length(self, key: str) -> int:
        return int(self.states[key][0].shape[0])


def _class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    y = labels[labels != NO_LABEL]
    counts = np.bincount(y, minlength=classes).astype(np.float64).clip(min=1)
    return torch.as_tensor(len(y) / (classes * counts), dtype=torch.float32)


def augment(data: TaskData, spec: MultitaskSpec) -> list[str]:
    """Training texts with brand names swapped (fixed seed), normalised as at inference."""
    rng = random.Random(spec.seed + 1)
    return [normalize_tweet(substitute_brands(t, rng, spec.brand_swap)) for t in data.texts]


def train_multitask(
    data: TaskData,
    init: dict[str, torch.Tensor],
    *,
    ft: FinetuneSpec,
    spec: MultitaskSpec = MultitaskSpec(),
    cache: StateCache | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
) -> dict[str, torch.Tensor]:
    """Fine-tune the layers above ``ft.frozen_layers`` (starting from ``init``, which also holds
    the sentiment head as ``head.*``) on the three tasks; returns layers and ``<task>.weight`` /
    ``<task>.bias`` per head."""
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    cache = cache or StateCache(ft)
    keys = augment(data, spec)
    cache.add(keys, log)
    encoder, _ = _load_encoder(ft)
    encoder.load_state_dict({k: v.clone() for k, v in init.items() if k.startswith("layers.")},
                            strict=False)
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.layers[ft.frozen_layers :]:
        for p in layer.parameters():
            p.requires_grad_(True)
    model = _MultiTuner(encoder, ft, spec.dropout)
    if "head.weight" in init:  # start sentiment from the head trained with these layers
        with torch.no_grad():
            model.head("sentiment").weight.copy_(init["head.weight"].float())
            model.head("sentiment").bias.copy_(init["head.bias"].float())
    model.train()
    labels = {t: torch.as_tensor(getattr(data, t), dtype=torch.long) for t in TASKS}
    weights = {t: _class_weights(getattr(data, t), CLASSES[t]) for t in TASKS}
    task_weight = {"sentiment": 1.0, "complaint": 1.0, "severity": spec.severity_weight}
    lengths = [cache.length(k) for k in keys]
    steps_per_epoch = math.ceil(len(keys) / spec.batch_size)
    total = max(1, int(steps_per_epoch * spec.epochs))
    warm = max(1, int(total * spec.warmup))
    enc_params = [p for p in encoder.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(
        [
            {"params": [p for p in enc_params if p.ndim > 1], "weight_decay": spec.weight_decay,
             "lr": spec.lr},
            {"params": [p for p in enc_params if p.ndim <= 1], "weight_decay": 0.0,
             "lr": spec.lr},
            {"params": model.heads.parameters(), "weight_decay": 0.0, "lr": spec.head_lr},
        ]
    )
    base = [g["lr"] for g in optim.param_groups]
    autocast = bf16_supported()
    step, started = 0, time.perf_counter()
    from models.finetune import _batches

    while step < total:
        for rows in _batches(lengths, spec.batch_size, rng):
            if step >= total:
                break
            scale = step / warm if step < warm else max(0.0, (total - step) / (total - warm))
            for g, lr in zip(optim.param_groups, base, strict=True):
                g["lr"] = lr * scale
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(*cache.batch([keys[i] for i in rows]))
            loss = torch.zeros(())
            for task in TASKS:
                y = labels[task][rows]
                keep = y != NO_LABEL
                if bool(keep.any()):
                    part = F.cross_entropy(
                        logits[task].float()[keep], y[keep], weight=weights[task]
                    )
                    loss = loss + task_weight[task] * part * (float(keep.sum()) / len(rows))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params, 1.0)
            optim.step()
            step += 1
            if progress:
                progress("multi-task fine-tune", step, total)
            if log and step % 200 == 0:
                log(f"step {step}/{total} loss {loss.item():.4f} "
                    f"{time.perf_counter() - started:.0f}s")
    out = trained_only(encoder.state_dict(), ft)
    for task in TASKS:
        head = model.head(task)
        out[f"{task}.weight"] = head.weight.detach().clone().contiguous()
        out[f"{task}.bias"] = head.bias.detach().clone().contiguous()
    return out


def predict(
    state: dict[str, torch.Tensor],
    texts: Sequence[str],
    *,
    ft: FinetuneSpec,
    cache: StateCache,
    batch: int = 128,
) -> dict[str, np.ndarray]:
    """Probabilities per task (bf16 autocast where supported), and the pooled ``features``."""
    encoder, _ = _load_encoder(ft)
    encoder.load_state_dict({k: v for k, v in state.items() if k.startswith("layers.")},
                            strict=False)
    model = _MultiTuner(encoder, ft, 0.0)
    for task in TASKS:
        model.head(task).weight.data = state[f"{task}.weight"].float()
        model.head(task).bias.data = state[f"{task}.bias"].float()
    model.eval()
    keys = [normalize_tweet(t) for t in texts]
    cache.add(keys)
    order = sorted(range(len(keys)), key=lambda i: cache.length(keys[i]))
    out = {t: np.zeros((len(keys), CLASSES[t]), np.float32) for t in TASKS}
    out["features"] = np.zeros((len(keys), 384 * len(ft.pool_layers)), np.float32)
    autocast = bf16_supported()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            h = model.features(*cache.batch([keys[i] for i in rows]))
            out["features"][rows] = h.float().numpy()
            for task in TASKS:
                logits = model.head(task)(h)
                out[task][rows] = torch.softmax(logits.float(), -1).numpy()
    return out


def head_arrays(state: dict[str, torch.Tensor], task: str) -> tuple[np.ndarray, np.ndarray]:
    """A task's linear head as (features, classes) weights and biases."""
    return (state[f"{task}.weight"].float().numpy().T.copy(),
            state[f"{task}.bias"].float().numpy().copy())


@dataclass
class CVResult:
    """Out-of-fold probabilities: every row scored by a model that never saw it."""

    complaint: np.ndarray  # (complaint rows,) P(complaint)
    severity: np.ndarray  # (complaint rows, 5)
    headline_complaint: np.ndarray  # (headline rows,) P(complaint)
    sentiment_dev: list[np.ndarray]  # per fold: (dev rows, 3), when dev texts were given
    # The same from logistic-regression heads refitted on each fold's fine-tuned features.
    complaint_lr: np.ndarray
    severity_lr: np.ndarray
    headline_lr: np.ndarray


HEADLINE_WEIGHT = 0.25  # a headline counts a quarter of a tweet in the logistic-regression heads
LOGREG_C = 0.01  # inverse L2 strength of the logistic-regression heads (as the shipped head)


def fit_logreg(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, c: float = LOGREG_C
) -> Callable[[np.ndarray], np.ndarray]:
    """A standardised, class-balanced logistic regression; returns its predict_proba."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=0)
    model.fit(scaler.transform(x), y, sample_weight=weight)
    return lambda z: model.predict_proba(scaler.transform(z))


def fold_pairs(
    complaint_labels: np.ndarray, stories: Sequence[str], folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Fold k: (complaint train, complaint test, headline train, headline test) row indices;
    complaint folds are stratified, headline folds hold out whole stories."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    comp = StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        np.zeros(len(complaint_labels)), complaint_labels)
    heads = GroupKFold(folds).split(np.zeros(len(stories)), groups=list(stories))
    return [(a, b, c, d) for (a, b), (c, d) in zip(comp, heads, strict=True)]


def cross_validate(
    complaints: TaskData,
    headlines: TaskData,
    stories: Sequence[str],
    sentiment: TaskData,
    init: dict[str, torch.Tensor],
    *,
    ft: FinetuneSpec,
    spec: MultitaskSpec = MultitaskSpec(),
    folds: int = 5,
    dev_texts: Sequence[str] = (),
    progress: Progress | None = None,
    log: Log | None = None,
    fold_state: Callable[[int, TaskData], dict[str, torch.Tensor]] | None = None,
) -> CVResult:
    """Fine-tune the encoder inside each fold and score the held-out complaints and headlines.

    ``fold_state(k, train)`` may supply (e.g. from a disk cache) the state for fold ``k``.
    """
    cache = StateCache(ft)
    n_c, n_h = len(complaints), len(headlines)
    out = CVResult(np.zeros(n_c), np.zeros((n_c, 5)), np.zeros(n_h), [],
                   np.zeros(n_c), np.zeros((n_c, 5)), np.zeros(n_h))
    pairs = fold_pairs(complaints.complaint, stories, folds, spec.seed)
    for k, (c_tr, c_te, h_tr, h_te) in enumerate(pairs):
        train = TaskData.concat([sentiment, complaints.subset(c_tr), headlines.subset(h_tr)])
        if fold_state is not None:
            state = fold_state(k, train)
        else:
            state = train_multitask(train, init, ft=ft, spec=spec, cache=cache, log=log)
        test = [complaints.texts[i] for i in c_te] + [headlines.texts[i] for i in h_te]
        seen = [complaints.texts[i] for i in c_tr] + [headlines.texts[i] for i in h_tr]
        probs = predict(state, [*test, *dev_texts, *seen], ft=ft, cache=cache)
        nc, nt, nd = len(c_te), len(test), len(dev_texts)
        out.complaint[c_te] = probs["complaint"][:nc, 1]
        out.severity[c_te] = probs["severity"][:nc]
        out.headline_complaint[h_te] = probs["complaint"][nc:nt, 1]
        if dev_texts:
            out.sentiment_dev.append(probs["sentiment"][nt : nt + nd])
        x_seen = probs["features"][nt + nd :]
        y_seen = np.r_[complaints.complaint[c_tr], np.zeros(len(h_tr), np.int64)]
        w_seen = np.r_[np.ones(len(c_tr)), np.full(len(h_tr), HEADLINE_WEIGHT)]
        comp_head = fit_logreg(x_seen, y_seen, w_seen)
        p = comp_head(probs["features"][:nt])
        out.complaint_lr[c_te] = p[:nc, 1]
        out.headline_lr[h_te] = p[nc:, 1]
        s_seen = np.r_[complaints.severity[c_tr], np.zeros(len(h_tr), np.int64)]
        keep = s_seen != NO_LABEL
        sev_head = fit_logreg(x_seen[keep], s_seen[keep], w_seen[keep])
        out.severity_lr[c_te] = sev_head(probs["features"][:nc])
        if progress:
            progress("complaint CV (fine-tune per fold)", k + 1, folds)
        if log:
            from sklearn.metrics import f1_score

            f1 = f1_score(complaints.complaint[c_te], out.complaint[c_te] >= 0.5, average="macro")
            fp = float(np.mean(out.headline_complaint[h_te] >= 0.5))
            f1_lr = f1_score(complaints.complaint[c_te], out.complaint_lr[c_te] >= 0.5,
                             average="macro")
            fp_lr = float(np.mean(out.headline_lr[h_te] >= 0.5))
            log(f"fold {k}: complaint macro-F1 {f1:.4f}, headlines called complaints {fp:.2%}; "
                f"logreg heads {f1_lr:.4f}, {fp_lr:.2%}")
    return out


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - experiments
    """Cross-validate one multi-task recipe, as recorded in models/README.md:

        python -m models.multitask --data ../shared/data --lr 1e-4 --epochs 3 --sentiment-rows 3000

    Starts from the bundled sentiment-tuned layers (and its tuned sentiment head), fine-tunes
    inside each of the 5 folds and prints complaint macro-F1, headlines called complaints,
    severity macro-F1 / Spearman (tuned heads, and logistic regressions refitted on each fold's
    fine-tuned features) and each fold model's sentiment dev macro-recall. One thread: on a
    shared 2-core machine two OpenMP threads ran ~6x slower per step.
    """
    import argparse
    import json
    from pathlib import Path

    from safetensors.torch import load_file
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score

    from models import complaint as complaint_heads
    from models.minilm import BUNDLED_DIR
    from models.train import COMPLAINTS_CSV, DEFAULT_RECIPE, load_sentiment, macro_recall

    parser = argparse.ArgumentParser(description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    for name, value in asdict(MultitaskSpec()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    spec = MultitaskSpec(**{k: getattr(args, k) for k in asdict(MultitaskSpec())})
    torch.set_num_threads(1)
    data = complaint_heads.load(args.data, COMPLAINTS_CSV)
    tweets = TaskData.make(data.texts, complaint=data.labels, severity=data.severity)
    heads = TaskData.make(data.headlines, complaint=[0] * len(data.headlines),
                          severity=[0] * len(data.headlines))
    train_set, dev = load_sentiment(args.data, "train"), load_sentiment(args.data, "dev")
    pick = sorted(np.random.default_rng(0).choice(len(train_set.texts), spec.sentiment_rows,
                                                  replace=False)) if spec.sentiment_rows else []
    sentiment = TaskData.make([train_set.texts[i] for i in pick],
                              sentiment=train_set.labels[pick])
    init = {k: v.float() for k, v in load_file(str(BUNDLED_DIR / "encoder-layers.safetensors"))
            .items()}
    with np.load(BUNDLED_DIR / "heads.npz") as npz:
        init["head.weight"] = torch.tensor(npz["sentiment.w0"].T.copy())
        init["head.bias"] = torch.tensor(npz["sentiment.b0"].copy())
    ft = DEFAULT_RECIPE.finetune or FinetuneSpec()
    started = time.perf_counter()
    r = cross_validate(tweets, heads, data.stories, sentiment, init, ft=ft, spec=spec,
                       dev_texts=dev.texts, log=lambda m: print(m, flush=True))
    known = data.severity != NO_LABEL
    levels = np.arange(5)
    out: dict[str, Any] = {"spec": spec.to_json(), "seconds": round(time.perf_counter() - started)}
    for name, comp, head, sev in (("tuned", r.complaint, r.headline_complaint, r.severity),
                                  ("logreg", r.complaint_lr, r.headline_lr, r.severity_lr)):
        out[name] = {
            "complaint_macro_f1": round(float(f1_score(data.labels, comp >= 0.5,
                                                       average="macro")), 4),
            "headlines_pct": round(100 * float(np.mean(head >= 0.5)), 2),
            "severity_macro_f1": round(float(f1_score(data.severity[known],
                                                      sev[known].argmax(1), average="macro")), 4),
            "severity_spearman": round(float(spearmanr(data.severity[known],
                                                       sev[known] @ levels).statistic), 4),
        }
    out["sentiment_dev_per_fold"] = [round(100 * macro_recall(dev.labels, d.argmax(1), 3), 2)
                                     for d in r.sentiment_dev]
    print(json.dumps(out))


if __name__ == "__main__":  # pragma: no cover
    main()
