"""Data: readers for the public fundus/OCT data sets, splits, preprocessing, cache, synthetic data."""
