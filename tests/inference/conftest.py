import pytest


@pytest.fixture(scope="session")
def codec_with_upsamplers(tmp_path_factory):
    """A tiny random codec in the official layout, converted: X-Codec plus both Vocos upsamplers."""
    from tests.codec.conftest import tiny_reference, write_official_tree
    from yue_train.codec.convert_files import convert_official

    tree = write_official_tree(tmp_path_factory.mktemp("official"), tiny_reference(0))
    out = tmp_path_factory.mktemp("converted") / "codec"
    convert_official(tree["ckpt"], out, vocal_decoder=tree["vocal"], inst_decoder=tree["inst"])
    return out
