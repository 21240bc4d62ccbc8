"""Image-quality metrics of the colorization papers: TF functions and a Keras metric."""

from chroma.metrics.auc import auc_ab, auc_ab_rebalanced
from chroma.metrics.fid import ActivationStatistics, evaluate_fid, fid_inception, frechet_distance
from chroma.metrics.image_quality import (
    PSNR_MSE_FLOOR,
    colorfulness,
    l1_ab,
    mse_8bit,
    mse_unit,
    psnr,
    psnr_from_mse,
    ssim,
    ssim_per_channel,
    uiqi,
    uiqi_torchmetrics,
)
from chroma.metrics.lpips import LPIPS, evaluate_lpips, lpips_distance
from chroma.metrics.keras_metrics import (
    SCALED_LAB_METRICS,
    ColorizationMetric,
    colorization_metrics,
    unit_lab,
)

__all__ = [
    "ActivationStatistics",
    "LPIPS",
    "PSNR_MSE_FLOOR",
    "SCALED_LAB_METRICS",
    "ColorizationMetric",
    "auc_ab",
    "auc_ab_rebalanced",
    "colorfulness",
    "colorization_metrics",
    "evaluate_fid",
    "evaluate_lpips",
    "fid_inception",
    "frechet_distance",
    "l1_ab",
    "lpips_distance",
    "mse_8bit",
    "mse_unit",
    "psnr",
    "psnr_from_mse",
    "ssim",
    "ssim_per_channel",
    "uiqi",
    "uiqi_torchmetrics",
    "unit_lab",
]
