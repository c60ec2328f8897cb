"""Data stages: synthetic demo cohort, curation, preprocessing cache, datasets, splits."""
