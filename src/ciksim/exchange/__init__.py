"""Exchange with other tools: model exports (SBML, SED-ML/COMBINE), result metadata
(Parquet, data dictionary) and flow cytometry in (FCS)."""
