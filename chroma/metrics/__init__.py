"""Image-quality metrics of the colorization papers: TF functions and a Keras metric."""

from chroma.metrics.image_quality import (
    PSNR_MSE_FLOOR,
    colorfulness,
    l1_ab,
    mse_8bit,
    mse_unit,
    psnr,
    ssim,
    ssim_per_channel,
    uiqi,
)
from chroma.metrics.keras_metrics import (
    SCALED_LAB_METRICS,
    ColorizationMetric,
    colorization_metrics,
)

__all__ = [
    "PSNR_MSE_FLOOR",
    "SCALED_LAB_METRICS",
    "ColorizationMetric",
    "colorfulness",
    "colorization_metrics",
    "l1_ab",
    "mse_8bit",
    "mse_unit",
    "psnr",
    "ssim",
    "ssim_per_channel",
    "uiqi",
]
