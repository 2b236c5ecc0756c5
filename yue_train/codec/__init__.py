"""Audio <-> codes for YuE: the X-Codec (transformers' ``XcodecModel`` configured for YuE), the Vocos
44.1 kHz upsamplers, low-band post-processing, conversion of the official checkpoints, and audio I/O.

Heavy modules are imported lazily by the CLIs; import from the submodules directly::

    from yue_train.codec.model import YueCodec
    codec = YueCodec.from_folder("codec/")
    codes = codec.encode(load_audio("song.mp3"), n_codebooks=8)
"""
