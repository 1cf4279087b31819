"""The science: culture (ex vivo generation); killing and patient build on it."""
