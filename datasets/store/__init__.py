"""Loaded once, when a run's data load: the packed keypoint store and its validation, the dataset catalog,
joint layouts, label maps, and the train / validation / unlabelled splits."""
