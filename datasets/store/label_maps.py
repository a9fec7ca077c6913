"""Class names: label i of a dataset is element i of its list.

NTU RGB+D 120's official action names (A001 ... A120, label = action number - 1), as published with
the dataset, official spellings kept ("hush (quite)", "wear on glasses"); NTU RGB+D 60 is its first 60
classes. The synthetic names come from `datasets.sources.synthetic.class_names`; an annotation file that names
its classes ('classes') gives a run its own list. `ntu_label_map` recognises a
custom file whose clips are NTU's own, named and labelled (as datasets/sources/convert.py writes them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datasets.sources.ntu_skeleton import BENCHMARKS, parse_ntu_name

NTU120_CLASSES: tuple[str, ...] = (
    "drink water",  # A001
    "eat meal/snack",
    "brushing teeth",
    "brushing hair",
    "drop",
    "pickup",
    "throw",
    "sitting down",
    "standing up (from sitting position)",
    "clapping",  # A010
    "reading",
    "writing",
    "tear up paper",
    "wear jacket",
    "take off jacket",
    "wear a shoe",
    "take off a shoe",
    "wear on glasses",
    "take off glasses",
    "put on a hat/cap",  # A020
    "take off a hat/cap",
    "cheer up",
    "hand waving",
    "kicking something",
    "reach into pocket",
    "hopping (one foot jumping)",
    "jump up",
    "make a phone call/answer phone",
    "playing with phone/tablet",
    "typing on a keyboard",  # A030
    "pointing to something with finger",
    "taking a selfie",
    "check time (from watch)",
    "rub two hands together",
    "nod head/bow",
    "shake head",
    "wipe face",
    "salute",
    "put the palms together",
    "cross hands in front (say stop)",  # A040
    "sneeze/cough",
    "staggering",
    "falling",
    "touch head (headache)",
    "touch chest (stomachache/heart pain)",
    "touch back (backache)",
    "touch neck (neckache)",
    "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person",  # A050
    "kicking other person",
    "pushing other person",
    "pat on back of other person",
    "point finger at the other person",
    "hugging other person",
    "giving something to other person",
    "touch other person's pocket",
    "handshaking",
    "walking towards each other",
    "walking apart from each other",  # A060, the last NTU RGB+D 60 class
    "put on headphone",
    "take off headphone",
    "shoot at the basket",
    "bounce ball",
    "tennis bat swing",
    "juggling table tennis balls",
    "hush (quite)",
    "flick hair",
    "thumb up",
    "thumb down",  # A070
    "make ok sign",
    "make victory sign",
    "staple book",
    "counting money",
    "cutting nails",
    "cutting paper (using scissors)",
    "snapping fingers",
    "open bottle",
    "sniff (smell)",
    "squat down",  # A080
    "toss a coin",
    "fold paper",
    "ball up paper",
    "play magic cube",
    "apply cream on face",
    "apply cream on hand back",
    "put on bag",
    "take off bag",
    "put something into a bag",
    "take something out of a bag",  # A090
    "open a box",
    "move heavy objects",
    "shake fist",
    "throw up cap/hat",
    "hands up (both hands)",
    "cross arms",
    "arm circles",
    "arm swings",
    "running on the spot",
    "butt kicks (kick backward)",  # A100
    "cross toe touch",
    "side kick",
    "yawn",
    "stretch oneself",
    "blow nose",
    "hit other person with something",
    "wield knife towards other person",
    "knock over other person (hit with body)",
    "grab other person's stuff",
    "shoot at other person with a gun",  # A110
    "step on foot",
    "high-five",
    "cheers and drink",
    "carry something with other person",
    "take a photo of other person",
    "follow other person",
    "whisper in other person's ear",
    "exchange things with other person",
    "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",  # A120
)
NTU60_CLASSES: tuple[str, ...] = NTU120_CLASSES[:60]
LABEL_MAPS: dict[str, tuple[str, ...]] = {"ntu60": NTU60_CLASSES, "ntu120": NTU120_CLASSES}


def class_names(dataset: str | Sequence[str] | None, num_classes: int) -> list[str]:
    """Names of the `num_classes` labels of `dataset`: a label map's name ('ntu60', 'ntu120', 'synthetic'),
    or the names themselves (an annotation file's 'classes', which a run keeps as its label map).

    A dataset without a map, or a class count that does not fit it (a model fine-tuned to another
    label set), gives 'class 0', 'class 1', ...: a wrong name would be worse than none.
    """
    names: list[str] | None = None
    if isinstance(dataset, (list, tuple)):
        names = list(dataset) if len(dataset) == num_classes else None
    elif dataset in LABEL_MAPS and num_classes == len(LABEL_MAPS[dataset]):
        names = list(LABEL_MAPS[dataset])
    elif dataset == "synthetic":
        from datasets.sources.synthetic import CLASS_NAMES
        from datasets.sources.synthetic import class_names as synthetic_names

        if 1 <= num_classes <= len(CLASS_NAMES):
            names = synthetic_names(num_classes)
    return names if names is not None else [f"class {i}" for i in range(num_classes)]


def ntu_label_map(names: list[str], labels: np.ndarray) -> str | None:
    """The NTU label map of an annotation file whose labels are NTU's own, else None.

    names: frame_dir of every clip; labels: (N,) int. The labels are NTU's when every clip is named
    SsssCcccPpppRrrrAaaa and labelled action - 1, as datasets/sources/convert.py and pyskl's NTU files label
    them; a file relabelled to another class set (or of other names) gets None. Returns 'ntu60' when
    every clip lies inside NTU RGB+D 60 (setups 1-17, actions 1-60), else 'ntu120'.
    """
    try:
        parsed = [parse_ntu_name(n) for n in names]
    except ValueError:
        return None
    if not parsed or any(p.label != int(y) for p, y in zip(parsed, labels, strict=True)):
        return None
    max_setup, max_action = BENCHMARKS["ntu60"]
    inside_ntu60 = all(p.setup <= max_setup and p.action <= max_action for p in parsed)
    return "ntu60" if inside_ntu60 else "ntu120"
