"""The embedded demo cohort: synthetic subjects from real MNI152 anatomy, written as BIDS-like NIfTI."""
