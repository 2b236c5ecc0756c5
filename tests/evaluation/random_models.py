"""Random-weight CLAP and Whisper checkpoints built from configs, with a byte-level BPE tokenizer and
feature extractors made locally (no hub), saved with save_pretrained the way real ones are.

``size="tiny"``: a few thousand parameters, for tests. ``size="real"``: the architectures of
laion/clap-htsat-unfused and openai/whisper-small (what the metrics load by default), for measuring cost."""

from __future__ import annotations

from pathlib import Path


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (printable bytes stand for
    themselves; the others map to code points from 256 up)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def save_random_clap(folder: Path, size: str = "tiny") -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + byte_symbols())}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    if size == "real":  # transformers' defaults are the HTSAT-tiny audio tower and RoBERTa-base text tower
        config = ClapConfig(text_config={"vocab_size": len(vocab), "pad_token_id": 1})
        extractor = ClapFeatureExtractor()  # 48 kHz, 64 mel bins, 10 s windows
        ClapModel(config).save_pretrained(folder)
        ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
        return folder
    config = ClapConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 32, "max_position_embeddings": 128, "pad_token_id": 1},
        audio_config={"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 2, "patch_stride": 2,
                      "depths": [1, 1], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 8,
                      "hidden_size": 16, "enable_fusion": False},
        projection_dim=8,
    )  # fmt: skip
    extractor = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        max_length_s=2,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=8000,
    )
    import torch

    with torch.random.fork_rng():  # the same weights whatever ran before in this process
        torch.manual_seed(0)
        ClapModel(config).save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_random_whisper(folder: Path, size: str = "tiny", timestamps: bool = False, positions: int = 64) -> Path:
    """``timestamps``: the vocabulary also holds Whisper's 1,501 time tokens ``<|0.00|>`` .. ``<|30.00|>`` right after
    the special tokens, and the generation config names them and English, so ``generate(return_timestamps=True,
    language="en")`` runs.
    ``positions``: the tiny decoder's length, which caps the tokens decoded per 30 s window (each decoder step
    costs ~0.1 s on two busy cores)."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)] if timestamps else []
    vocab = {t: i for i, t in enumerate(byte_symbols() + specials + stamps)}
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    end, start = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    if size == "real":  # whisper-small; its 51,865-token output layer (ids past this vocabulary decode to nothing)
        width = dict(d_model=768, layers=12, heads=12, ffn=3072, positions=448, vocab_size=51865)
    else:
        width = dict(d_model=16, layers=1, heads=2, ffn=32, positions=positions, vocab_size=len(vocab))
    # With timestamps (the transcription tests), text other than the letters a-z and the space is suppressed, so
    # that what the random model writes always has words; the lyrics_wer tests write any byte.
    letters = {vocab[c] for c in "abcdefghijklmnopqrstuvwxyz"} | {vocab[byte_symbols()[ord(" ")]]}
    suppress = [i for i in range(256) if i not in letters] if timestamps else []
    config = WhisperConfig(
        vocab_size=width["vocab_size"], num_mel_bins=80, max_source_positions=1500, d_model=width["d_model"],
        encoder_layers=width["layers"], decoder_layers=width["layers"], encoder_attention_heads=width["heads"],
        decoder_attention_heads=width["heads"], encoder_ffn_dim=width["ffn"], decoder_ffn_dim=width["ffn"],
        max_target_positions=width["positions"], pad_token_id=end, bos_token_id=end, eos_token_id=end,
        decoder_start_token_id=start, suppress_tokens=suppress, begin_suppress_tokens=[],
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    model.generation_config.no_timestamps_token_id = vocab["<|notimestamps|>"]
    if timestamps:  # and a language and a task, so that generate(language="en", task="transcribe") runs too
        model.generation_config.max_initial_timestamp_index = 50
        model.generation_config.suppress_tokens = suppress
        model.generation_config.is_multilingual = True
        model.generation_config.lang_to_id = {"<|en|>": vocab["<|en|>"]}
        model.generation_config.task_to_id = {"transcribe": vocab["<|transcribe|>"]}
        model.generation_config._from_model_config = False  # else loading rebuilds it from config.json, without these
    model.save_pretrained(folder)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer).save_pretrained(
        folder
    )
    return folder
