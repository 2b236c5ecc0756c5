"""Conversion of the official checkpoint layout: strict loading, layout errors, same numbers as a direct load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.codec.conftest import XCODEC_REF, require, tiny_reference, write_official_tree
from tests.codec.xcodec_reference import OfficialXcodec
from yue_train.codec.config import hubert_config_from_json, official_xcodec_config
from yue_train.codec.convert import CheckpointLayoutError, check_layout, convert_codec_state_dict, infer_xcodec_config
from yue_train.codec.convert_files import convert_official
from yue_train.codec.model import YueCodec, build_xcodec, load_strict


def test_reference_module_tree_is_the_released_checkpoint_layout():
    """Our statement of the official model has exactly the released keys and shapes, in order; converted,
    they are exactly the keys and shapes of XcodecModel configured from the official config files."""
    keys_json = require(XCODEC_REF / "codec_state_dict_keys_shapes.json")
    released = json.loads(keys_json.read_text())
    ref = OfficialXcodec()
    official = ref.official_state_dict()
    assert [[k, list(v.shape)] for k, v in official.items()] == released

    config = official_xcodec_config(
        XCODEC_REF / "final_ckpt" / "config.yaml", XCODEC_REF / "semantic_ckpts" / "hf_1_325000" / "config.json"
    )
    assert config.num_quantizers == 12 and config.codebook_size == 1024 and config.hop_length == 320
    model = build_xcodec(config, empty=True)
    check_layout(convert_codec_state_dict(official), model.state_dict(), "released layout")  # raises on any mismatch
    inferred = infer_xcodec_config(
        official, None, hubert_config_from_json(XCODEC_REF / "semantic_ckpts" / "hf_1_325000" / "config.json")
    )
    assert inferred.to_dict()["acoustic_model_config"] == config.to_dict()["acoustic_model_config"]
    assert inferred.semantic_model_config.num_hidden_layers == 12


@pytest.mark.slow
def test_released_architecture_encodes_and_decodes_like_the_official_algorithm():
    """Full-size (HuBERT-base, D=256, 12 codebooks) random weights: converted model == official algorithm."""
    require(XCODEC_REF / "codec_state_dict_keys_shapes.json")
    ref = OfficialXcodec().randomize(3).eval()
    official = ref.official_state_dict()
    model = build_xcodec(infer_xcodec_config(official), empty=True)
    load_strict(model, convert_codec_state_dict(official), "in memory")
    codec = YueCodec(model, device="cpu")
    wave = torch.randn(4077, generator=torch.Generator().manual_seed(1)) * 0.3
    expected = ref.encode(wave[None, None], 12)[0].numpy()
    got = codec.encode(wave.numpy(), n_codebooks=12)
    assert got.dtype == np.int16 and got.shape == expected.shape == (12, codec.n_frames(4077))
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(expected[0])) > 3  # the codes actually vary
    np.testing.assert_allclose(
        codec.decode(expected), ref.decode(torch.from_numpy(expected)[None])[0, 0].numpy(), atol=1e-5
    )


def test_official_files_convert_to_a_strictly_loading_folder(official_tree, codec_dir, tiny_ref):
    meta = json.loads((codec_dir / "yue_codec.json").read_text())
    assert meta["format"] == "yue-codec" and meta["n_codebooks"] == 12 and set(meta["upsamplers"]) == {"vocal", "inst"}
    assert meta["provenance"]["xcodec_ckpt"]["sha256"]
    assert meta["provenance"]["codec_config"]["file"].endswith("final_ckpt/config.yaml")  # found beside the ckpt
    codec = YueCodec.from_folder(codec_dir, device="cpu")
    saved = load_file(codec_dir / "xcodec.safetensors")
    assert set(saved) == set(codec.model.state_dict())
    assert codec.config.semantic_model_config.num_attention_heads == 4  # from the HuBERT config.json beside it
    # every official tensor arrives: weight-norm folds, renames, buffers
    converted = convert_codec_state_dict(tiny_ref.official_state_dict())
    for k, v in converted.items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)


def test_converted_folder_gives_the_same_results_as_a_direct_load(tiny_codec, tiny_ref):
    """Same weights, two routes: official module tree (direct load) vs file -> convert -> folder -> XcodecModel."""
    ref = tiny_ref.double()
    codec = YueCodec(tiny_codec.model.double(), device="cpu")
    try:
        rng = np.random.default_rng(5)
        lengths = (16000, 16000 + 123, 7 * 320 + 5)
        # both branches of the official encode: acoustic frames == semantic frames, and the padded re-run
        reruns = [
            codec.model._get_conv1d_output_lengths(n, codec.model.acoustic_encoder) != codec.n_frames(n)
            for n in lengths
        ]
        assert reruns == [False, True, False]
        for n in lengths:
            wave = (0.3 * rng.standard_normal(n)).astype(np.float32)
            for k in (1, 8, 12):
                expected = ref.encode(torch.from_numpy(wave).double()[None, None], k)[0].numpy()
                np.testing.assert_array_equal(codec.encode(wave, n_codebooks=k), expected)
            assert len(np.unique(expected[0])) > 5
            y_ref = ref.decode(torch.from_numpy(expected)[None])[0, 0].numpy()
            # weight norm was folded in float32 at conversion: agreement to float32 rounding of the weights
            np.testing.assert_allclose(codec.decode(expected), y_ref, rtol=0, atol=1e-7)
    finally:
        tiny_ref.float()
        tiny_codec.model.float()


def _save_official(tmp_path, mutate) -> tuple:
    ref = tiny_reference(0)
    sd = ref.official_state_dict()
    mutate(sd)
    path = tmp_path / "ckpt.pth"
    torch.save({"codec_model": sd}, path)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sd: sd.__setitem__("fc_post2.weight", torch.zeros(31, 96)), "fc_post2"),
        (lambda sd: sd.__setitem__("decoder_2.model.0.bias", torch.zeros(65)), "decoder_2.model.0"),
        (lambda sd: sd.pop("encoder_semantic.conv.conv.weight"), "encoder_semantic.conv.weight"),  # missing: our name
        (lambda sd: sd.__setitem__("discriminator.weight", torch.zeros(3)), "discriminator.weight"),
        (lambda sd: sd.pop("encoder.block.1.block.4.weight_g"), "weight_g"),
    ],
    ids=["wrong-shape-linear", "wrong-shape-conv", "missing", "unexpected", "half-weight-norm"],
)
def test_bad_checkpoint_layout_is_refused_naming_file_and_key(tmp_path, mutate, message):
    path = _save_official(tmp_path, mutate)
    with pytest.raises(CheckpointLayoutError) as err:
        convert_official(path, tmp_path / "out", hash_sources=False)
    assert str(path) in str(err.value) and message in str(err.value)
    assert not (tmp_path / "out" / "yue_codec.json").exists()


def test_config_disagreeing_with_weights_is_refused(tmp_path, tiny_ref):
    paths = write_official_tree(tmp_path, tiny_ref, with_decoders=False)
    yaml_path = tmp_path / "final_ckpt" / "config.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("D: 32", "D: 256"))
    with pytest.raises(CheckpointLayoutError, match="D=256"):
        convert_official(paths["ckpt"], tmp_path / "out", hash_sources=False)
