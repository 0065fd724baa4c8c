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
from sprout.core.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    generations INTEGER NOT NULL DEFAULT 1  -- times this answer was generated and stored: 1 unless paid twice
)
"""
# Caches made before `generations` existed get the column (each of their answers counted once).
MIGRATE = "ALTER TABLE responses ADD COLUMN generations INTEGER NOT NULL DEFAULT 1"
INSERT = """
INSERT INTO responses (key, model, text, finish_reason, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET text = excluded.text, finish_reason = excluded.finish_reason,
    prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
    generations = generations + 1
"""


def valid_unicode(text: str) -> str:
    """A server's JSON may carry half an emoji (a lone surrogate escape): it cannot be stored, written as UTF-8 or
    validated as a record, so it becomes U+FFFD here, once, for every generator."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def cache_key(model_id: str, messages: Prompt, sampling: Sampling, sample_index: int,
              extras: dict | None = None) -> str:
    """`extras` (the backend's `cache_extras()`) join the key only when there are any: every other key stays as it
    was, so a cache keeps serving across versions."""
    parts = [model_id, messages, sampling.for_key(), sample_index, *([extras] if extras else [])]
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedBackend(Backend):
    def __init__(self, inner: Backend, path: Path, max_failure_rate: float = 0.2, min_failures: int = 5):
        self.inner = inner
        self.max_failure_rate, self.min_failures = max_failure_rate, min_failures
        self.model_id = inner.model_id
        self.extras = inner.cache_extras()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        if "generations" not in columns:
            self._db.execute(MIGRATE)
        self.usage = Usage()

    def lookup(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
        ).fetchone()
        return Completion(row[0], row[1], row[2], row[3], cached=True) if row else None

    def generate(self, batch: list[Prompt], sampling: Sampling, generator: str = "") -> list[list[Completion]]:
        """The backend's `generate`, answered from the cache where it can; `generator` names who asked, for the
        usage counted per model and generator."""
        keys = [[cache_key(self.model_id, messages, sampling, j, self.extras) for j in range(sampling.n)]
                for messages in batch]
        results: list[list[Completion | None]] = [[self.lookup(k) for k in row] for row in keys]
        # Conversations with any sample missing are sent again whole, so `n` samples always come from one call.
        missing = [i for i, row in enumerate(results) if any(c is None for c in row)]
        if missing:
            started = time.perf_counter()
            fresh = self.inner.generate([batch[i] for i in missing], sampling)
            self.usage.add_time(time.perf_counter() - started, self.model_id, generator)
            for completions in fresh:
                for completion in completions:
                    completion.text = valid_unicode(completion.text)
            # A failed sample is not stored: a rerun (or the next batch) asks for it again.
            rows = [(keys[i][j], self.model_id, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens)
                    for i, completions in zip(missing, fresh, strict=True) for j, c in enumerate(completions)
                    if not c.failed]
            # One transaction per call: the batch is cached whole or not at all.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(INSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for i, completions in zip(missing, fresh, strict=True):
                results[i] = list(completions)
            # What the backend adapted to its server (said once in the log) goes into the run's summary too.
            self.usage.notes += [note for note in self.inner.notes if note not in self.usage.notes]
        for row in results:
            for completion in row:
                self.usage.add(completion, self.model_id, generator)
        self._check_failure_rate()
        return results  # type: ignore[return-value]

    def _check_failure_rate(self) -> None:
        """Stop the run when too many requests fail even after retries: the backend is down, not flaky."""
        usage = self.usage
        asked = usage.calls + usage.failed
        if usage.failed >= self.min_failures and usage.failed > self.max_failure_rate * asked:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(usage.failures.items()))
            raise UserError(f"backend: {usage.failed} of {asked} requests failed after retries ({reasons}), more "
                            f"than backend.max_failure_rate={self.max_failure_rate:g}. Fix: check the server "
                            "(or backend.base_url); a rerun resumes from the cache and asks the failed ones again.")

    def close(self) -> None:
        self._db.close()
        self.inner.close()
