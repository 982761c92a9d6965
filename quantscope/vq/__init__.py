"""Vector quantization: codebooks (k-means), PQ / OPQ / residual / scalar / norm-explicit quantizers with
one ``fit / encode / decode`` protocol, ADC search over codes, and error analysis.

Light on import: torch only (no faiss, no matplotlib).
"""

from .analysis import (
    CodebookUsage,
    RatePoint,
    VQErrorReport,
    codebook_usage,
    error_report,
    gaussian_rd_waterfill,
    gaussian_vq_vs_scalar,
    rate_sweep,
)
from .base import BaseVectorQuantizer
from .data import gaussian_mixture, load_docstring_embeddings
from .kmeans import KMeansResult, kmeans
from .layer import VQLayer
from .neq import NormExplicitQuantizer
from .opq import OptimizedProductQuantizer
from .pq import ProductQuantizer
from .residual import ResidualQuantizer
from .scalar import ScalarQuantizer
from .search import ADCIndex, adc_search, exact_search, recall_at_k
from .vq import VectorQuantizer

__all__ = [
    "ADCIndex", "BaseVectorQuantizer", "CodebookUsage", "KMeansResult", "NormExplicitQuantizer",
    "OptimizedProductQuantizer", "ProductQuantizer", "RatePoint", "ResidualQuantizer", "ScalarQuantizer",
    "VQErrorReport", "VQLayer", "VectorQuantizer", "adc_search", "codebook_usage", "error_report", "exact_search",
    "gaussian_mixture", "gaussian_rd_waterfill", "gaussian_vq_vs_scalar", "kmeans", "load_docstring_embeddings",
    "rate_sweep", "recall_at_k",
]
