"""Helpers shared by the training, compilation and serving workloads."""
