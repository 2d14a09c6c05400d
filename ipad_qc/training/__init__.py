"""Training on IPAD data: the shared loop (data, loss, validation, calibration, resume) and the model recipes."""
