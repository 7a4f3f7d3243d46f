"""Datasets and augmentation for the tasks: multilingual pair sampling (``multilingual_pair_dataset``) and
mRASP2's aligned augmentation (``aligned_augmentation``). Nothing here registers with fairseq."""
