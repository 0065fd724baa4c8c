"""The embedded model's one-time conversions when several processes want them at once (the test workers of a fresh
clone, two sprout commands): one converts, the others wait and use what it wrote, and no one replaces a file another
may be reading or writes into another's staging file. Each conversion (~20 s for safetensors, ~1 s for the engine's
GGUF) is replaced by a slow stand-in that writes a prepared result."""

import threading
import time

import pytest

from sprout.backends import model_store


def stand_in_conversion(write):
    """A slow conversion that records how many ran and whether two ever ran at once."""
    record = {"conversions": 0, "inside": 0, "most_inside": 0}

    def convert(*args):
        record["inside"] += 1
        record["most_inside"] = max(record["most_inside"], record["inside"])
        time.sleep(0.3)
        target = write(*args)
        record["conversions"] += 1
        record["inside"] -= 1
        return target

    return convert, record


def write_folder(target, log):
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"weights")
    return target


def write_gguf(shipped, target, ftype, log):
    target.write_bytes(b"GGUF")
    return target


@pytest.mark.parametrize("conversion", ["safetensors", "engine gguf"])
def test_concurrent_first_uses_convert_once_and_all_get_the_same_result(conversion, tmp_path, monkeypatch):
    monkeypatch.setenv("SPROUT_MODELS_DIR", str(tmp_path / "models"))
    if conversion == "safetensors":
        convert, record = stand_in_conversion(write_folder)
        monkeypatch.setattr(model_store, "_convert_embedded", convert)
        prepare, target = model_store.prepare_embedded, tmp_path / "models" / model_store.EMBEDDED_NAME
    else:
        convert, record = stand_in_conversion(write_gguf)
        monkeypatch.setattr(model_store, "_quantize_gguf", convert)
        prepare = lambda log: model_store.prepare_engine_gguf("f16", log=log)  # noqa: E731
        target = tmp_path / "models" / f"{model_store.EMBEDDED_NAME}.f16.gguf"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(prepare(log=lambda *_: None))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert record["conversions"] == 1 and record["most_inside"] == 1
    assert results == [target] * 4
    assert prepare(log=lambda *_: None) == target and record["conversions"] == 1  # ready: no second conversion


@pytest.mark.parametrize(("flags", "picked"), [
    ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "f16"),  # Sapphire Rapids: f16 measured 1.20x faster
    ({"avx512f", "avx512_bf16"}, "bf16"),  # bf16 dot products without AMX: bf16 prefilled ~1.4x faster
    ({"fp", "asimd", "bf16"}, "bf16"),  # Arm with BF16
    ({"avx2", "f16c"}, "f16"),  # no native bf16: bf16 would convert every value
    (set(), "f16"),  # no /proc/cpuinfo
])
def test_auto_weights_follow_what_was_measured_per_kind_of_cpu(monkeypatch, flags, picked):
    monkeypatch.setattr(model_store, "cpu_flags", lambda: flags)
    assert model_store.engine_weights("auto") == picked
    assert model_store.engine_weights("bf16") == "bf16" and model_store.engine_weights("q4_1") == "q4_1"
