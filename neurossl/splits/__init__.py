"""Subject-level splits: the file format (``files``), auditing and safe loading (``audit``) and
writing the paper's protocol for a scans table (``make``)."""
