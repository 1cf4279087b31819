"""Real laboratory data in: cytotoxicity (release) assays."""
