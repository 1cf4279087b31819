"""Calibration of model parameters to a user's own data, with uncertainty."""
