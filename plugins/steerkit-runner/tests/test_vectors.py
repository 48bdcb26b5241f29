"""Saved vectors reload bit for bit, say what they are, and steer the model exactly as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner.vectors import (
    VectorFileError,
    load_vector,
    load_vectors,
    read_sidecar,
    save_vector,
    save_vectors,
)

import steerkit
from steerkit import SteeringVector

from .conftest import HOOK


def awkward_vector(rng: np.random.Generator, d: int = 16) -> np.ndarray:
    """Values whose bits a lossy round trip would change: tiny, huge, −0.0, a subnormal."""
    v = rng.normal(size=d) * np.logspace(-12, 12, d)
    v[0], v[1], v[2] = -0.0, 5e-324, np.nextafter(1.0, 2.0)
    return v


def test_a_vector_reloads_bit_identically_with_its_sidecar(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    raw = awkward_vector(steerkit_rng)
    provenance = {
        "method": "qp",
        "lam": 0.1,
        "eps": None,
        "solver": "path",
        "support": [3, 17, 40],
        "support_values": [0.25, 1e-7, 3.5],
        "objective": float("nan"),
    }
    vector = SteeringVector(
        vector=raw, hook_point=HOOK, scale=0.7, positions="prompt", layer=1, provenance=provenance
    )
    metadata = {
        "model": "tiny",
        "preset": None,
        "sae": {"release": "r", "id": "i", "d_sae": 64},
        "config_hash": "f" * 64,
    }
    tensor_path, json_path = save_vector(vector, tmp_path / "v", metadata=metadata)
    assert (tensor_path.name, json_path.name) == ("v.safetensors", "v.json")

    for name in ("v", "v.safetensors", "v.json"):
        loaded = load_vector(tmp_path / name)
        assert loaded.vector.dtype == raw.dtype
        assert loaded.vector.tobytes() == raw.tobytes()  # bit for bit, −0.0 included
        assert (loaded.hook_point, loaded.scale, loaded.layer) == (HOOK, 0.7, 1)
        assert loaded.positions.value == "prompt"
        assert loaded.provenance["support"] == [3, 17, 40]
        assert loaded.provenance["objective"] is None  # JSON has no NaN

    sidecar = json.loads(json_path.read_text())
    assert sidecar["support"] == [3, 17, 40] and sidecar["support_values"] == [0.25, 1e-7, 3.5]
    assert sidecar["lam"] == 0.1 and sidecar["method"] == "qp" and sidecar["scale"] == 0.7
    assert sidecar["sae"] == {"release": "r", "id": "i", "d_sae": 64}
    assert sidecar["steerkit_version"] == steerkit.__version__ and sidecar["hook_point"] == HOOK
    assert sidecar["config_hash"] == "f" * 64 and sidecar["shape"] == [16]
    assert read_sidecar(tmp_path / "v") == sidecar

    with pytest.raises(FileExistsError, match="never overwritten"):
        save_vector(vector, tmp_path / "v")


def test_a_stack_of_per_input_vectors(tmp_path: Path, steerkit_rng: np.random.Generator) -> None:
    vectors = [
        SteeringVector(
            vector=awkward_vector(steerkit_rng),
            hook_point=HOOK,
            provenance={"method": "qp", "support": [i], "support_values": [float(i)]},
        )
        for i in range(3)
    ]
    save_vectors(vectors, tmp_path / "s", input_ids=[0, 2, 5])
    loaded = load_vectors(tmp_path / "s")
    assert [v.vector.tobytes() for v in loaded] == [v.vector.tobytes() for v in vectors]
    one = load_vector(tmp_path / "s", index=5)
    assert one.vector.tobytes() == vectors[2].vector.tobytes()
    assert one.provenance["support"] == [2]
    with pytest.raises(VectorFileError, match="pass index= one of the input ids"):
        load_vector(tmp_path / "s")
    with pytest.raises(VectorFileError, match=r"\[0, 2, 5\]"):
        load_vector(tmp_path / "s", index=1)


def test_missing_or_mismatched_files_are_clear_errors(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    vector = SteeringVector(vector=steerkit_rng.normal(size=8), hook_point=HOOK)
    save_vector(vector, tmp_path / "a")
    (tmp_path / "a.json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(VectorFileError, match=r"a\.json is missing: .* needs its JSON sidecar"):
        load_vector(tmp_path / "a.safetensors")

    save_vector(vector, tmp_path / "b")
    save_vector(
        SteeringVector(vector=steerkit_rng.normal(size=12), hook_point=HOOK), tmp_path / "c"
    )
    (tmp_path / "c.json").replace(tmp_path / "b.json")  # b's tensor with c's sidecar
    with pytest.raises(VectorFileError, match=r"shape \(8,\) does not match its sidecar's \(12,\)"):
        load_vector(tmp_path / "b")

    save_vector(vector, tmp_path / "d")
    save_vector(SteeringVector(vector=vector.vector + 1.0, hook_point=HOOK), tmp_path / "e")
    (tmp_path / "e.json").replace(tmp_path / "d.json")  # same shape, other numbers
    with pytest.raises(VectorFileError, match="do not match the checksum"):
        load_vector(tmp_path / "d")

    (tmp_path / "f.json").write_text("{}")
    with pytest.raises(VectorFileError, match="not a steerkit steering-vector sidecar"):
        load_vector(tmp_path / "f")


@pytest.mark.needs_torch
def test_a_reloaded_vector_steers_identically(
    tmp_path: Path, tiny_source: Any, steerkit_rng: np.random.Generator
) -> None:
    texts = ["the cat sat on the mat", "a dog is sad", "the bird flew"]
    vector = SteeringVector(
        vector=awkward_vector(steerkit_rng).clip(-5, 5), hook_point=HOOK, scale=1.5
    )
    save_vector(vector, tmp_path / "v")
    loaded = load_vector(tmp_path / "v")
    original = tiny_source.logits(texts, vector=vector)
    again = tiny_source.logits(texts, vector=loaded)
    assert np.array_equal(original, again)
    assert not np.allclose(original, tiny_source.logits(texts))  # the vector does steer
    generated = tiny_source.generate(texts, max_new_tokens=4, vector=vector)
    assert tiny_source.generate(texts, max_new_tokens=4, vector=loaded) == generated


class Crash(BaseException):
    """Stands for the process dying mid-write: not an Exception, so nothing handles it."""


def test_a_crash_while_writing_leaves_the_old_file_or_none_never_a_torn_one(
    tmp_path: Path, steerkit_rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from steerkit_runner import vectors as module

    first = SteeringVector(vector=steerkit_rng.normal(size=16), hook_point=HOOK)
    second = SteeringVector(vector=steerkit_rng.normal(size=16), hook_point=HOOK)
    save_vector(first, tmp_path / "v")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    # the process dies after half the new tensor's bytes reached the disk
    real_fdopen = os.fdopen

    class HalfWritten:
        def __init__(self, fd: int, mode: str) -> None:
            self.file = real_fdopen(fd, mode)

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise Crash

    monkeypatch.setattr(module.os, "fdopen", HalfWritten)
    with pytest.raises(Crash):
        save_vector(second, tmp_path / "v", overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old pair, no debris
    assert np.array_equal(load_vector(tmp_path / "v").vector, first.vector)

    # the process dies between the tensor and its sidecar: the pair no longer agrees, and says so
    calls = {"n": 0}
    real_atomic = module._atomic_write

    def dies_before_the_sidecar(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        real_atomic(path, data)

    monkeypatch.setattr(module, "_atomic_write", dies_before_the_sidecar)
    with pytest.raises(Crash):
        save_vector(second, tmp_path / "v", overwrite=True)
    monkeypatch.undo()
    problem = module.check_saved(tmp_path / "v")
    assert problem is not None and "checksum" in problem
    with pytest.raises(VectorFileError, match="checksum"):
        load_vector(tmp_path / "v")

    # a torn tensor (as written by a non-atomic writer) is named, not a raw library error
    (tmp_path / "w.safetensors").write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a')
    save_vector(first, tmp_path / "x")
    (tmp_path / "x.safetensors").write_bytes((tmp_path / "x.safetensors").read_bytes()[:40])
    with pytest.raises(VectorFileError, match=r"x\.safetensors is not a readable safetensors"):
        load_vector(tmp_path / "x")
    assert "cut short or damaged" in (module.check_saved(tmp_path / "x") or "")


def test_a_sidecar_without_its_hook_point_is_named(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    save_vector(
        SteeringVector(vector=steerkit_rng.normal(size=16), hook_point=HOOK), tmp_path / "v"
    )
    sidecar = json.loads((tmp_path / "v.json").read_text())
    del sidecar["hook_point"]
    (tmp_path / "v.json").write_text(json.dumps(sidecar))
    with pytest.raises(VectorFileError, match=r"v\.json has no valid 'hook_point'"):
        load_vector(tmp_path / "v")


def test_an_adaptive_vector_carries_its_table(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    from steerkit_path import steering_function

    decoder = steerkit_rng.normal(size=(40, 16))
    function = steering_function(decoder, steerkit_rng.normal(size=16), 0.5, eps=2.0)
    vectors = [
        SteeringVector(
            vector=function([r])[0], hook_point=HOOK, positions="adaptive", function=function
        )
        for r in (0.5, 1.0, -1.0)
    ]
    save_vector(vectors[0], tmp_path / "one")
    save_vectors(vectors, tmp_path / "stack")
    for loaded in (load_vector(tmp_path / "one"), *load_vectors(tmp_path / "stack")):
        assert loaded.positions.value == "adaptive"
        assert loaded.function is not None and loaded.function.same_as(function)
    assert read_sidecar(tmp_path / "one")["function"]["kind"] == "socp"
    assert "function_table" not in json.loads((tmp_path / "one.json").read_text())

    # a table that does not match its sidecar's checksum is never replayed
    sidecar = json.loads((tmp_path / "one.json").read_text())
    sidecar["function"]["sha256"] = "0" * 64
    (tmp_path / "one.json").write_text(json.dumps(sidecar))
    with pytest.raises(VectorFileError, match="steering function"):
        load_vector(tmp_path / "one")


def test_a_run_with_qp_adaptive_saves_vectors_that_replay(
    toy_host: steerkit.PluginHost, tiny_source: Any, write_config: Any
) -> None:
    from steerkit_runner import runner as runner_module
    from steerkit_runner.steer import steer_prompts

    from .conftest import TINY_CONFIG

    text = TINY_CONFIG.replace('name = "qp"\n', 'name = "qp_adaptive"\n')
    result = runner_module.run(write_config(text), source=tiny_source, report=False, progress=False)
    assert not result.failed_units
    files = sorted((result.run_dir / "vectors").glob("qp_adaptive*_inputs.safetensors"))
    assert files, sorted(p.name for p in (result.run_dir / "vectors").iterdir())
    vectors = load_vectors(files[0])
    assert all(v.positions.value == "adaptive" and v.function is not None for v in vectors)
    prompts = ["the cat sat on the mat", "a dog is"]
    steered = steer_prompts(files[0], prompts, max_new_tokens=4, source=tiny_source)
    adaptive = load_vector(files[0], index=read_sidecar(files[0])["input_ids"][0])
    assert [c.steered for c in steered] == tiny_source.generate(
        prompts, max_new_tokens=4, vector=adaptive
    )
    # the replay is per token: not the same as adding the saved vector at every position
    fixed = SteeringVector(vector=adaptive.vector, hook_point=HOOK)
    per_token = tiny_source.logits(prompts, adaptive)
    assert not np.allclose(per_token, tiny_source.logits(prompts, fixed), atol=1e-4)
    assert not np.allclose(per_token, tiny_source.logits(prompts), atol=1e-4)
