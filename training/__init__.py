"""Offline training: datasets, synthetic demo data, training, export and evaluation through edge."""
