"""`steerkit export`: each format read back by its own reader (gguf's GGUFReader, torch.load,
csv, numpy, safetensors) and compared with what steerkit adds; what a format cannot carry
exits 2."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steerkit_runner.export import ExportUnsupportedError, block_output, export_vector, hf_module
from steerkit_runner.vectors import save_vector, save_vectors

from steerkit import SteeringVector
from steerkit.cli import main

D = 24


def _vector(
    rng: np.random.Generator,
    hook: str = "blocks.3.hook_resid_post",
    *,
    scale: float = 0.75,
    positions: str = "all",
    support: list[int] | None = None,
) -> SteeringVector:
    values = [0.4 + 0.1 * i for i in range(len(support))] if support else None
    provenance = {} if support is None else {"support": support, "support_values": values}
    return SteeringVector(
        vector=rng.normal(size=D),
        hook_point=hook,
        scale=scale,
        positions=positions,
        provenance=provenance,
    )


def _save(tmp_path: Path, vector: SteeringVector, name: str = "v") -> Path:
    metadata = {"model": "gemma-3-270m", "sae": {"release": "my-release", "id": "layer_3"}}
    save_vector(vector, tmp_path / name, metadata=metadata)
    return tmp_path / f"{name}.safetensors"


def _gguf(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, {tensor name: (type name, array)}) through gguf's own reader."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields: dict[str, Any] = {}
    for name in ("general.architecture", "controlvector.model_hint"):
        field = reader.get_field(name)
        assert field is not None, name
        fields[name] = bytes(field.parts[field.data[0]]).decode("utf-8")
    count = reader.get_field("controlvector.layer_count")
    assert count is not None
    fields["controlvector.layer_count"] = int(count.parts[count.data[0]][0])
    tensors = {
        t.name: (t.tensor_type.name, np.array(t.data), [int(s) for s in t.shape])
        for t in reader.tensors
    }
    return fields, tensors


@pytest.mark.parametrize(
    ("hook", "block"),
    [
        ("blocks.3.hook_resid_post", 3),
        ("blocks.4.hook_resid_pre", 3),
        ("blocks.1.hook_resid_post", 1),
    ],
)
def test_a_gguf_control_vector_reads_back_as_direction_of_the_block_output(
    tmp_path: Path, steerkit_rng: np.random.Generator, hook: str, block: int
) -> None:
    vector = _vector(steerkit_rng, hook)
    out = export_vector(_save(tmp_path, vector), "gguf-control")
    assert out == tmp_path / "v.gguf"
    fields, tensors = _gguf(out)
    assert fields == {
        "general.architecture": "controlvector",
        "controlvector.model_hint": "gemma-3-270m",
        "controlvector.layer_count": block,
    }
    assert list(tensors) == [f"direction.{block}"]
    kind, data, shape = tensors[f"direction.{block}"]
    assert (kind, shape, data.dtype) == ("F32", [D], np.float32)
    # llama.cpp adds strength · direction.N: at strength 1 that is steerkit's α·v
    np.testing.assert_array_equal(data, (0.75 * vector.vector).astype(np.float32))


def test_repeng_takes_the_model_type_and_allows_block_zero(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    vector = _vector(steerkit_rng, "blocks.0.hook_resid_post")
    path = _save(tmp_path, vector)
    assert main(["export", str(path), "--format", "gguf-control"]) == 2
    assert not (tmp_path / "v.gguf").exists()
    out = export_vector(path, "repeng", tmp_path / "r.gguf", model_hint="gemma3_text")
    fields, tensors = _gguf(out)
    assert fields["controlvector.model_hint"] == "gemma3_text"
    np.testing.assert_array_equal(
        tensors["direction.0"][1], (0.75 * vector.vector).astype(np.float32)
    )


def test_lm_eval_pt_adds_what_steerkit_adds(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    import torch

    vector = _vector(steerkit_rng, "blocks.5.hook_resid_pre", scale=-2.0)
    out = export_vector(_save(tmp_path, vector), "lm-eval-pt")
    config = torch.load(out, weights_only=True)
    assert list(config) == ["layers.4"]
    entry = config["layers.4"]
    assert (entry["action"], entry["bias"]) == ("add", None)
    # lm-eval's "add" hook: acts + steering_coefficient · steering_vector, at every position
    acts = torch.tensor(steerkit_rng.normal(size=(2, 3, D)), dtype=torch.float32)
    steered = acts + entry["steering_coefficient"] * entry["steering_vector"]
    expected = acts.double() + torch.tensor(-2.0 * vector.vector)
    np.testing.assert_allclose(steered.double().numpy(), expected.numpy(), rtol=0, atol=1e-5)


def test_lm_eval_csv_names_the_one_feature_and_its_coefficient(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    vector = _vector(steerkit_rng, "blocks.6.hook_resid_post", scale=3.0, support=[117])
    out = export_vector(_save(tmp_path, vector), "lm-eval-csv", sae_id="layer_6/width_16k")
    with out.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert rows == [
        {
            "loader": "sae_lens",
            "action": "add",
            "sparse_model": "my-release",
            "hookpoint": "layers.6",
            "feature_index": "117",
            "steering_coefficient": repr(3.0 * 0.4),
            "sae_id": "layer_6/width_16k",
        }
    ]


def test_lm_eval_csv_refuses_several_features_and_dense_vectors(
    tmp_path: Path, steerkit_rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    several = _save(tmp_path, _vector(steerkit_rng, support=[1, 5, 9]), "several")
    assert main(["export", str(several), "--format", "lm-eval-csv"]) == 2
    assert "combines 3 SAE features" in capsys.readouterr().err
    dense = _save(tmp_path, _vector(steerkit_rng), "dense")
    assert main(["export", str(dense), "--format", "lm-eval-csv"]) == 2
    assert "lm-eval-pt" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))


def test_per_input_stacks_need_an_index_except_in_plain_arrays(
    tmp_path: Path, steerkit_rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.numpy import load_file

    vectors = [_vector(steerkit_rng, scale=s) for s in (0.5, 1.0, -1.5)]
    save_vectors(vectors, tmp_path / "stack", input_ids=[4, 7, 9], metadata={"model": "m"})
    path = tmp_path / "stack.safetensors"
    for fmt in ("gguf-control", "repeng", "lm-eval-pt", "lm-eval-csv"):
        assert main(["export", str(path), "--format", fmt]) == 2
        assert "per-input vectors" in capsys.readouterr().err
    expected = np.stack([v.scale * v.vector for v in vectors])
    assert main(["export", str(path), "--format", "numpy"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "stack.npy"), expected)
    assert main(["export", str(path), "--format", "safetensors", "-o", str(tmp_path / "p")]) == 0
    np.testing.assert_array_equal(load_file(str(tmp_path / "p"))["vectors"], expected)
    out = export_vector(path, "gguf-control", index=7)
    np.testing.assert_array_equal(
        _gguf(out)[1]["direction.3"][1], (1.0 * vectors[1].vector).astype(np.float32)
    )


def test_what_no_engine_carries_is_refused(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    prompt_only = _save(tmp_path, _vector(steerkit_rng, positions="prompt"), "p")
    with pytest.raises(ExportUnsupportedError, match="prompt positions only"):
        export_vector(prompt_only, "gguf-control")
    mlp = _save(tmp_path, _vector(steerkit_rng, "blocks.2.hook_mlp_out"), "m")
    with pytest.raises(ExportUnsupportedError, match="not the residual stream"):
        export_vector(mlp, "lm-eval-pt")
    with pytest.raises(ExportUnsupportedError, match="embedding output"):
        hf_module("blocks.0.hook_resid_pre")
    assert block_output("blocks.0.hook_resid_pre") == -1


def test_per_token_steering_is_refused_by_every_format(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    from steerkit_path import steering_function

    function = steering_function(
        steerkit_rng.normal(size=(40, D)), steerkit_rng.normal(size=D), 0.5, lam=1.0
    )
    adaptive = SteeringVector(
        vector=function([1.0])[0],
        hook_point="blocks.3.hook_resid_post",
        positions="adaptive",
        function=function,
    )
    path = _save(tmp_path, adaptive, "a")
    for fmt in ("gguf-control", "lm-eval-pt", "safetensors", "numpy"):
        with pytest.raises(ExportUnsupportedError, match="per-token optimal steering"):
            export_vector(path, fmt, tmp_path / f"out-{fmt}")
    assert main(["export", str(path), "--format", "numpy"]) == 2
    assert not list(tmp_path.glob("out-*")) and not list(tmp_path.glob("a.npy"))


def test_an_existing_file_is_not_overwritten(
    tmp_path: Path, steerkit_rng: np.random.Generator
) -> None:
    path = _save(tmp_path, _vector(steerkit_rng))
    (tmp_path / "v.npy").write_bytes(b"keep")
    assert main(["export", str(path), "--format", "numpy"]) == 1
    assert (tmp_path / "v.npy").read_bytes() == b"keep"
    assert main(["export", str(path), "--format", "numpy", "--force"]) == 0
    assert np.load(tmp_path / "v.npy").shape == (D,)
