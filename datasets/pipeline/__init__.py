"""Per clip, in numpy, in the loader workers: frame sampling, compaction, resize / crop / flip, augmentations,
the corruption suite and the training noise, MotionBERT's preprocessing (`clips.py` is the Dataset)."""
