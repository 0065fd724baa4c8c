"""Persistent response cache (SQLite in WAL mode) wrapped around any backend.

Key: hash of (backend model id, messages, sampling params, sample index). A whole `generate` call is committed in
one transaction, so a run killed at any moment finds each batch either fully cached or not at all and, started
again, sends exactly the same requests: identical output, no call paid twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from sprout.backends.base import Backend, Completion, Prompt, Sampling, Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
)
"""


def cache_key(model_id: str, messages: Prompt, sampling: Sampling, sample_index: int) -> str:
    payload = json.dumps([model_id, messages, sampling.for_key(), sample_index], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedBackend(Backend):
    def __init__(self, inner: Backend, path: Path):
        self.inner = inner
        self.model_id = inner.model_id
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)
        self.usage = Usage()

    def lookup(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
        ).fetchone()
        return Completion(row[0], row[1], row[2], row[3], cached=True) if row else None

    def generate(self, batch: list[Prompt], sampling: Sampling, generator: str = "") -> list[list[Completion]]:
        keys = [[cache_key(self.model_id, messages, sampling, j) for j in range(sampling.n)] for messages in batch]
        results: list[list[Completion | None]] = [[self.lookup(k) for k in row] for row in keys]
        # Conversations with any sample missing are sent again whole, so `n` samples always come from one call.
        missing = [i for i, row in enumerate(results) if any(c is None for c in row)]
        if missing:
            started = time.perf_counter()
            fresh = self.inner.generate([batch[i] for i in missing], sampling)
            self.usage.add_time(time.perf_counter() - started, self.model_id, generator)
            rows = [(keys[i][j], self.model_id, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens)
                    for i, completions in zip(missing, fresh, strict=True) for j, c in enumerate(completions)]
            # One transaction per call: the batch is cached whole or not at all.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for i, completions in zip(missing, fresh, strict=True):
                results[i] = list(completions)
        for row in results:
            for completion in row:
                self.usage.add(completion, self.model_id, generator)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._db.close()
        self.inner.close()
