"""IPAD-CLIP training: losses, the three-stage trainer, threshold calibration and evaluation runs."""
