"""The Fréchet distance between two Gaussians fitted to embedding sets (the math of FAD)."""

from __future__ import annotations

import numpy as np


def gaussian(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (n, d) embeddings, n >= 2."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 embeddings as an (n, d) array, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + tr(Σ1) + tr(Σ2) − 2·tr((Σ1 Σ2)^½).

    tr((Σ1 Σ2)^½) is computed as tr((Σ1^½ Σ2 Σ1^½)^½): the same eigenvalues, but of a symmetric positive
    semi-definite matrix, so an eigen-decomposition is exact and stable even when the covariances are
    singular (fewer embeddings than dimensions)."""
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    distance = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)


def frechet_between(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to embedding sets ``a`` and ``b``."""
    return frechet_distance(*gaussian(a), *gaussian(b))
