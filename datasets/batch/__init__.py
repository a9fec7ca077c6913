"""Per batch, in torch, on the training device: heatmap / limb / grayscale volumes rendered for the whole
batch (`render.py`), and joint-coordinate inputs with their streams and visibility (`streams.py`)."""
