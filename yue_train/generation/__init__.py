"""Song generation with the training models: prompt → stage 1 (codebook 0, CFG) → stage 2 (codebooks 1–7).

The library part of inference: `yue-infer` (``inference/``), the Python API and the evaluation run inside
training all call these functions, so a song generated during training is made by the same code as one
generated from the command line."""
