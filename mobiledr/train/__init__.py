"""Training, clinical evaluation, calibration, the out-of-distribution gate and explanations."""
