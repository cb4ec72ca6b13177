"""Data in and out: item files, judgment writers, calibration-set manifests, loaders, splits."""
