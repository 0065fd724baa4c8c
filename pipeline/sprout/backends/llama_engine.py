"""Continuous batching on llama.cpp, with the prompt prefix that a call's requests share computed once.

Why this engine (issue 18, measured in bench/generation.py): on 2 CPU cores the transformers loop spends most of a
decode step in per-layer Python/PyTorch overhead, so a batch of 8 list prompts decodes at a quarter of the batch-32
rate, each row waits for the longest, and every prompt's few-shot header is prefilled again for every row.
llama.cpp runs the model as the GGUF it ships in, with C kernels; this module adds the scheduling on top:

- **Continuous batching.** Up to `slots` sequences decode together, one token each per `llama_decode`; the moment
  one ends (end-of-turn token, stop string, token budget) its KV cells are freed and the next request takes its
  slot, prefilled in the same batch as the others' decode tokens.
- **Shared prefix, computed once.** The tokens that all of a call's prompts start with (a prompt file's
  instructions and fixed examples: prompts put what they share first) are decoded once into a prefix sequence and
  copied into each request's KV stream by `llama_memory_seq_cp` (a memory copy, no second prefill). Where a call
  mixes prompt files (an Evol-Instruct round's six operations), a request copies instead the stream of a request in
  flight that has more of its prompt computed, cut back to what they share (prefix_groups.py).
- **A call's answers depend on the call alone.** Every call starts from an empty cache (cell placement, and so the
  order of float sums, would otherwise depend on the calls before), so a run resumed after kill -9 gets, for the
  calls it makes again, the answers the uninterrupted run got.
- **No padding.** Each request prefills only its own suffix; batches are token lists, not rectangles.
- **Attention as two matrix products, not flash attention**, whose CPU kernel walks a query row's KV cells one at a
  time (an f16 dot, an exp, an f16 multiply-add each): on `make data`'s recorded calls, 0.86x the model time
  (bench/attention.py, A B B A); the tokens differ by float rounding only.
- **Sampling in C, one seeded sampler chain per request:** OpenAI's additive presence/frequency penalty over the
  generated tokens, then temperature, then top-p, then a draw seeded from the call's seed and the request's index,
  so a request's sample does not depend on which others shared its batches; temperature 0 is greedy.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sprout.backends.prefix_groups import admission_order, common_prefix, pick_start

PREFIX_SEQ = 0  # the sequence id holding the shared prefix; requests get 1..slots


@dataclass
class Request:
    tokens: list[int]  # the whole prompt
    seed: int


@dataclass
class Finished:
    tokens: list[int]  # new tokens, the end token included when one ended the row
    finish_reason: str  # "stop" (end token or stop string) or "length"


@dataclass
class _Sequence:
    index: int  # the request's position in the call
    seq_id: int
    prompt: list[int]
    fed: int  # prompt tokens already in the KV cache (the shared prefix counts)
    sampler: object
    waiting: bool = False  # for a request in flight to have more of its prompt computed (prefix_groups.py)
    generated: list[int] = field(default_factory=list)

    @property
    def decoding(self) -> bool:
        return self.fed == len(self.prompt)


_LOG_SINK = []  # the callback llama.cpp calls, kept for the process's life (see _silence_llama_log)


def _silence_llama_log() -> None:
    """llama.cpp logs every model load and context build to stderr; sprout's own log says what matters. The callback
    outlives any engine (one freed with its engine crashed a later `llama_model_quantize` logging through it)."""
    import llama_cpp

    if not _LOG_SINK:
        _LOG_SINK.append(llama_cpp.llama_log_callback(lambda level, text, user_data: None))
    llama_cpp.llama_log_set(_LOG_SINK[0], ctypes.c_void_p())


class LlamaEngine:
    """One GGUF model and one llama.cpp context with a KV stream for each of `slots` sequences and the prefix."""

    def __init__(self, gguf: Path, threads: int, slots: int = 16, stream_cells: int = 2048, n_batch: int = 512,
                 share_prefix: bool = True, copy_in_flight: bool = True, flash_attn: bool = False):
        import llama_cpp

        self.lc = llama_cpp
        _silence_llama_log()
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        # Quantized weights (q4_1, q8_0) in llama.cpp's extra layouts (AMX, repacked) crashed the process (SIGSEGV) at
        # the first pass on a CPU with AMX; bf16 and f16, the defaults, have no extra layout and lose nothing.
        model_params.use_extra_bufts = False
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), model_params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.threads, self.slots, self.n_batch, self.flash_attn = threads, slots, n_batch, flash_attn
        self.share_prefix = share_prefix  # off: every request prefills its whole prompt (the tests' slow path)
        self.copy_in_flight = share_prefix and copy_in_flight  # off: the call-wide prefix only (bench's baseline)
        self.moves = 0  # streams moved into gaps (see _compact)
        self.group_copies = 0  # requests that started from another request's stream
        self.prefilled = 0  # prompt tokens computed (shared prefixes once): what sharing saves shows here
        self.on_logits: Callable | None = None  # (request index, step, logits as numpy) before each draw: for tests
        self.ctx = None
        self._new_context(stream_cells)
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.prefix: list[int] = []  # tokens of the prefix sequence now in the cache
        # Seconds in passes that read prompt tokens (prefill) and in passes that only write (decode), sampling
        # included: the per-phase figure of bench/generation.py.
        self.phase_seconds = {"prefill": 0.0, "decode": 0.0}

    def _new_context(self, stream_cells: int) -> None:
        """A context with one KV stream of `stream_cells` per sequence (the prefix's included). Separate streams:
        a sequence's attention reads only its own cells (a unified cache masks every other sequence's cells, at a
        cost that grows with the batch); the prefix is copied into a stream once per request."""
        lc = self.lc
        if self.ctx:
            lc.llama_free(self.ctx)
        params = lc.llama_context_default_params()
        params.n_ctx = stream_cells * (self.slots + 1)
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = self.slots + 1
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = False
        params.flash_attn_type = (lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else
                                  lc.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {stream_cells} tokens per sequence")
        self.stream_cells = stream_cells
        self.memory = lc.llama_get_memory(self.ctx)
        self.prefix = []

    def is_end(self, token: int) -> bool:
        return bool(self.lc.llama_vocab_is_eog(self.vocab, token))

    def logits(self, row: int):
        """A copy of the logits llama.cpp computed for batch entry `row` of the last pass."""
        import numpy as np

        pointer = self.lc.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def _sampler(self, sampling, seed: int):
        lc = self.lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if sampling.presence_penalty or sampling.frequency_penalty:
            # Over the last max_tokens accepted tokens, i.e. every generated one (prompt tokens are never accepted).
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_penalties(
                self.n_vocab, sampling.max_tokens, 1.0, sampling.frequency_penalty, sampling.presence_penalty))
        if sampling.temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(sampling.temperature))
            if sampling.top_p < 1.0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(sampling.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode over (token, position, sequence, wants logits) entries, in batch order."""
        batch = self.batch
        for i, (token, position, seq_id, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_id
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        status = self.lc.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed ({status})")

    def _set_prefix(self, tokens: list[int]) -> None:
        """Empty the cache (every stream, every head), then compute `tokens` into the prefix sequence."""
        started = time.perf_counter()
        self.lc.llama_memory_clear(self.memory, False)  # metadata only: cells are written before they are read
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self._decode([(t, start + k, PREFIX_SEQ, False) for k, t in enumerate(chunk)])
        self.prefix = list(tokens)
        self.prefilled += len(tokens)
        self.phase_seconds["prefill"] += time.perf_counter() - started

    def run(self, requests: list[Request], sampling, end_ids: set[int],
            stopped: Callable[[list[int]], bool]) -> list[Finished]:
        """Generate for every request under one `sampling`. A row ends at a token of `end_ids` or one the model
        marks end-of-generation, when `stopped(new tokens)` sees a stop string, or at `sampling.max_tokens`."""
        # Every request keeps at least its last prompt token to itself: its logits start the answer.
        shared = max(0, min(common_prefix([r.tokens for r in requests]), min(len(r.tokens) for r in requests) - 1))
        shared = shared if self.share_prefix else 0
        need = max(len(r.tokens) for r in requests) + sampling.max_tokens
        if need > self.stream_cells:  # a request longer than a stream: streams big enough for it
            self._new_context(1 << (need - 1).bit_length())
        self._set_prefix(requests[0].tokens[:shared])
        pending = deque(admission_order([r.tokens for r in requests]) if self.copy_in_flight else range(len(requests)))
        active: dict[int, _Sequence] = {}  # by sequence id
        results: list[Finished | None] = [None] * len(requests)
        while pending or active:
            for seq_id in range(1, self.slots + 1):  # admit into the lowest free ids: see _compact
                if not pending:
                    break
                if seq_id not in active:
                    index = pending.popleft()
                    active[seq_id] = _Sequence(index, seq_id, requests[index].tokens, shared,
                                               self._sampler(sampling, requests[index].seed))
                    self._fill(active[seq_id], active, shared)
            for seq_id in sorted(active):
                if active[seq_id].waiting:
                    self._fill(active[seq_id], active, shared)
            started = time.perf_counter()
            entries, owners, prefill = self._step_entries(active)
            self._decode(entries)
            logit_rows = [i for i, entry in enumerate(entries) if entry[3]]
            for row, seq in zip(logit_rows, owners, strict=True):
                if self.on_logits:
                    self.on_logits(seq.index, len(seq.generated), self.logits(row))
                token = self.lc.llama_sampler_sample(seq.sampler, self.ctx, row)
                seq.generated.append(token)
                reason = ("stop" if token in end_ids or self.is_end(token) or stopped(seq.generated) else
                          "length" if len(seq.generated) >= sampling.max_tokens else None)
                if reason:
                    results[seq.index] = Finished(seq.generated, reason)
                    self.lc.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
                    self.lc.llama_sampler_free(seq.sampler)
                    del active[seq.seq_id]
            self.phase_seconds["prefill" if prefill else "decode"] += time.perf_counter() - started
            if not pending:
                self._compact(active)
        return results  # type: ignore[return-value]

    def _fill(self, seq: _Sequence, active: dict[int, _Sequence], shared: int) -> None:
        """Put a sequence's first prompt tokens in its stream: copied from the request in flight that has the most of
        them computed (cut back to those: separate streams are copied whole), else the call-wide prefix; or wait a
        pass for one in flight that is computing more of them."""
        sources = [m for m in active.values() if m is not seq and not m.waiting] if self.copy_in_flight else []
        start = pick_start(seq.prompt, shared, [(m.prompt, m.fed) for m in sources])
        seq.waiting = start.wait
        if start.wait:
            return
        if start.source is None:
            self.lc.llama_memory_seq_cp(self.memory, PREFIX_SEQ, seq.seq_id, -1, -1)  # exactly the shared tokens
            return
        self.lc.llama_memory_seq_cp(self.memory, sources[start.source].seq_id, seq.seq_id, -1, -1)
        self.lc.llama_memory_seq_rm(self.memory, seq.seq_id, start.length, -1)
        seq.fed = start.length
        self.group_copies += 1

    def _step_entries(self, active: dict[int, _Sequence]):
        """The next batch: one token for every decoding sequence, in sequence-id order, then prompt parts as the
        batch has room. llama.cpp batches the decode tokens of separate streams into one pass only when their
        sequence ids run consecutively in the batch (its `split_equal`); a gap or a disorder splits the pass."""
        entries, owners, prefill = [], [], False
        for seq_id in sorted(active):
            seq = active[seq_id]
            if seq.decoding:
                entries.append((seq.generated[-1], len(seq.prompt) + len(seq.generated) - 1, seq_id, True))
                owners.append(seq)
        for seq_id in sorted(active):
            seq, room = active[seq_id], self.n_batch - len(entries)
            if seq.decoding or seq.waiting or room <= 0:
                continue
            part = seq.prompt[seq.fed:seq.fed + room]
            self.prefilled += len(part)
            last = seq.fed + len(part) == len(seq.prompt)
            entries += [(t, seq.fed + k, seq_id, last and k == len(part) - 1) for k, t in enumerate(part)]
            seq.fed += len(part)
            prefill = True
            if last:
                owners.append(seq)
        return entries, owners, prefill

    def _compact(self, active: dict[int, _Sequence]) -> None:
        """With nothing left to admit, finished rows leave gaps in the sequence ids, and each gap would split the
        decode pass (see _step_entries): the highest sequence moves down into the lowest gap (its stream is
        copied, a few MB at most)."""
        while active:
            gaps = [i for i in range(1, max(active)) if i not in active]
            if not gaps:
                return
            high, low = max(active), gaps[0]
            self.lc.llama_memory_seq_cp(self.memory, high, low, -1, -1)
            self.lc.llama_memory_seq_rm(self.memory, high, -1, -1)
            seq = active.pop(high)
            seq.seq_id = low
            self.moves += 1
            active[low] = seq

    def close(self) -> None:
        if self.ctx:
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
            self.lc.llama_model_free(self.model)
            self.ctx = None
