"""The data path, one subpackage per stage:

- `sources/`: formats, readers and converters (NTU `.skeleton`, MSR Action3D, any folder of clips, videos,
  the synthetic generator); run before training (`python -m datasets.convert`) or by `predict`.
- `store/`: runs once when the data load: the packed keypoint store, the dataset catalog, joint layouts,
  label maps, the train / validation / unlabelled splits.
- `pipeline/`: runs per clip, in numpy, in the loader workers: frame sampling, transforms, augmentations,
  the corruption suite and the training noise, MotionBERT's preprocessing; one Dataset (`pipeline/clips.py`).
- `batch/`: runs per batch, in torch, on the training device: rendered volumes (`batch/render.py`) and the
  coordinate input with its streams (`batch/streams.py`).
"""
