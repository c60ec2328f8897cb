"""The real-data pipeline: reading, curation, preprocessing cache, datasets, augmentation, scans tables."""
