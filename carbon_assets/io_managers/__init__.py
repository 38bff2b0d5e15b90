"""IO managers: how each layer's values are stored and loaded (one module per format)."""
