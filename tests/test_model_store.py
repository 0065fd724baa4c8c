"""The embedded model's one-time conversion when several processes want it at once (the test workers of a fresh
clone, two sprout commands): one converts, the others wait and use its folder, and no one replaces a folder another
may be reading. The conversion itself (~20 s) is replaced by a slow stand-in that writes a prepared folder."""

import threading
import time

from sprout.backends import model_store


def test_concurrent_first_uses_convert_once_and_all_get_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPROUT_MODELS_DIR", str(tmp_path / "models"))
    conversions, inside, overlaps = [], [], []

    def slow_conversion(target, log):
        inside.append(1)
        overlaps.append(len(inside))  # more than one inside at once = the lock did not hold
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"weights")
        conversions.append(threading.get_ident())
        inside.pop()
        return target

    monkeypatch.setattr(model_store, "_convert_embedded", slow_conversion)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(model_store.prepare_embedded(log=lambda *_: None)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target = tmp_path / "models" / model_store.EMBEDDED_NAME
    assert len(conversions) == 1 and overlaps == [1]
    assert results == [target] * 4 and model_store.is_prepared(target)
    assert model_store.prepare_embedded(log=lambda *_: None) == target and len(conversions) == 1  # ready: no lock
