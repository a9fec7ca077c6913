"""Built-in synthetic skeleton actions in pyskl's annotation format, so the whole tool runs offline.

Each clip is produced by a small kinematic model rather than hand-placed points: a pseudo-3D stick
figure (segment lengths in metres, joint angles that are functions of time) is posed by an action
program, stood on the ground, placed in a scene (one or two persons), seen from one of three camera
directions (NTU's C001/C002/C003: 0, +45 and -45 degrees) and projected with a pinhole camera into a
1080x1920 (h x w) frame, like pyskl's ntu60_hrnet.pkl. Detector-like effects are then added: pixel
jitter, confidence scores that drop on fast, small and occluded joints, and occasional missing joints
or whole missing persons (coordinates 0, score 0).

Variation that keeps the classes from being trivially separable:
- subjects differ in body proportions, height, tempo, amplitude, handedness and where they stand;
- every clip draws its own length (30-300 frames by default, independent of the class), time warp,
  amplitude, number and timing of repetitions, posture noise, camera view, distance and offset;
- one-person clips sometimes have an idle second person in the frame, and confusable classes share
  their kinematics (wave one hand / both hands, punch / push, squat / bow / jump, walk / turn).

Splits are cross-subject: the last 30% of subjects (rounded, at least one) are `xsub_val`, the others
`xsub_train`; with the default 10 subjects that is subjects 1-7 for training and 8-10 for validation.
Everything is drawn from generators seeded by (seed, subject, class, repetition), so the same options
give byte-identical arrays, and adding clips or classes leaves the existing clips unchanged.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic import atomic_write

FPS = 30.0  # frames per second, like NTU RGB+D
IMG_SHAPE = (1080, 1920)  # (h, w) in pixels
VAL_FRACTION = 0.3  # share of subjects held out for xsub_val
# Bump when the generated data change, so that stale caches are not read (it is part of the filename).
GENERATOR_VERSION = 2

CLASS_NAMES: tuple[str, ...] = (
    "wave one hand",
    "wave both hands",
    "clap",
    "punch",
    "kick",
    "squat",
    "jump",
    "bow",
    "raise both arms",
    "handshake",
    "push",
    "walk",
    "turn around",
)
DEFAULT_NUM_CLASSES = 12
TWO_PERSON = frozenset({"handshake", "push"})
P_IDLE_PARTNER = 0.15  # chance that a one-person clip shows a passive second person

LEFT, RIGHT = 1.0, -1.0  # side signs in the body frame, whose x axis points to the person's left
Pose = dict[str, np.ndarray]  # joint angles (radians) and root motion (metres) per frame, each (T,)


def class_names(num_classes: int = DEFAULT_NUM_CLASSES) -> list[str]:
    """Names of the first `num_classes` synthetic classes (label i is element i); by default those of
    the default dataset, which leaves out the last class, "turn around"."""
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"num_classes must be in 1..{len(CLASS_NAMES)}, got {num_classes}")
    return list(CLASS_NAMES[:num_classes])


# ----------------------------------------------------------------------------------------------
# Body, subjects, and the angle conventions


@dataclass(frozen=True)
class Body:
    """Segment lengths of one person, in metres."""

    hip_half: float  # pelvis centre to each hip joint
    torso: float  # pelvis centre to the middle of the shoulders ("neck")
    shoulder_half: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    ankle_h: float  # ankle joint above the ground
    head: float  # neck to head centre
    face: float  # head centre to the nose


# Proportions of body height (anthropometric tables, roughly): they add up to 1 from ankle to head top.
_PROPORTIONS = {
    "hip_half": 0.06,
    "torso": 0.30,
    "shoulder_half": 0.11,
    "upper_arm": 0.18,
    "forearm": 0.15,
    "thigh": 0.245,
    "shin": 0.245,
    "ankle_h": 0.04,
    "head": 0.10,
    "face": 0.055,
}


def _random_body(rng: np.random.Generator, height: float) -> Body:
    """Body of `height` metres with every segment scaled independently by ~N(1, 0.05)."""
    return Body(**{k: v * height * float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12)) for k, v in _PROPORTIONS.items()})


@dataclass(frozen=True)
class Subject:
    """A performer: body and movement style, fixed across all of its clips."""

    index: int  # 1-based, the P of the frame_dir
    body: Body
    tempo: float  # multiplies the speed of every action
    amplitude: float  # multiplies the size of every movement
    p_right: float  # chance of using the right hand / foot for one-sided actions
    x_pref: float  # preferred lateral position in the scene, metres
    depth_pref: float  # preferred distance to the camera, metres
    arm_rest: float  # how far the arms hang away from the body, radians


def _make_subject(rng: np.random.Generator, index: int) -> Subject:
    return Subject(
        index=index,
        body=_random_body(rng, rng.uniform(1.52, 1.90)),
        tempo=rng.uniform(0.75, 1.3),
        amplitude=rng.uniform(0.8, 1.15),
        p_right=0.85 if rng.random() < 0.8 else 0.2,
        x_pref=rng.uniform(-0.5, 0.5),
        depth_pref=rng.uniform(3.5, 4.6),
        arm_rest=np.deg2rad(rng.uniform(4, 14)),
    )


# Pose keys. Limb angles use `_limb_dir`'s convention and are absolute (relative to the pelvis frame,
# not to the parent segment), which keeps the action programs short: "forearm points up" is one number.
_SIDES = (("l", LEFT), ("r", RIGHT))
_ANGLES = (
    "yaw",  # whole-body rotation about the vertical, 0 = facing the camera, positive turns to its left
    "pitch",  # trunk bent forward about the hips
    "lean",  # trunk tilted towards the left
    "twist",  # shoulders and arms rotated about the vertical (punches)
    "nod",  # head bent forward, on top of the trunk pitch
    *(f"{part}_{s}" for s, _ in _SIDES for part in ("sh_abd", "sh_flex", "fa_abd", "fa_flex", "th_abd", "th_flex")),
    *(f"knee_{s}" for s, _ in _SIDES),  # knee bend: shin flexion = thigh flexion - knee bend
)
_ROOT = ("lift", "root_x", "root_z")  # metres: feet off the ground, displacement in the person's frame


def _rest_pose(n: int, arm_rest: float) -> Pose:
    """Standing still, arms hanging, elbows slightly bent: every key of a Pose, each (n,)."""
    pose = {k: np.zeros(n) for k in _ANGLES + _ROOT}
    for s, _ in _SIDES:
        pose[f"sh_abd_{s}"][:] = arm_rest
        pose[f"fa_abd_{s}"][:] = arm_rest * 0.5
        pose[f"fa_flex_{s}"][:] = np.deg2rad(12)
        pose[f"th_abd_{s}"][:] = np.deg2rad(3)
    return pose


def _limb_dir(abd: np.ndarray, flex: np.ndarray, side: float) -> np.ndarray:
    """Unit direction (T, 3) of a limb segment in the body frame (x = person's left, y = up, z = forward).

    Starting from hanging straight down, `abd` swings the segment sideways in the frontal plane towards
    its own side (pi/2 horizontal, pi straight up; negative crosses the midline), then `flex` turns it
    about the left-right axis (forward for a hanging segment, backward for a raised one).
    """
    sa, ca = np.sin(abd), np.cos(abd)
    return np.stack([side * sa, -ca * np.cos(flex), ca * np.sin(flex)], axis=-1)


def _rot_y(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate vectors v (T, ..., 3) about the vertical by angle (T,), right-handed (z turns into x)."""
    c = np.cos(angle).reshape(-1, *([1] * (v.ndim - 2)))
    s = np.sin(angle).reshape(c.shape)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([c * x + s * z, y, c * z - s * x], axis=-1)


def _forward_kinematics(pose: Pose, body: Body) -> np.ndarray:
    """COCO-17 joint positions (T, 17, 3) in metres: x = the person's (initial) left, y = up, z = forward.

    The feet are put on the ground (lowest ankle at its height above the floor) plus `lift`, then the
    body is turned by `yaw` and moved by (root_x, root_z).
    """
    n = len(pose["pitch"])
    j = np.zeros((n, 17, 3))
    pitch, lean, twist = pose["pitch"], pose["lean"], pose["twist"]
    pelvis = np.zeros((n, 3))
    spine = np.stack([np.sin(lean), np.cos(lean) * np.cos(pitch), np.cos(lean) * np.sin(pitch)], -1)  # (T, 3)
    neck = pelvis + body.torso * spine
    left = _rot_y(np.tile([1.0, 0.0, 0.0], (n, 1)), twist)
    head_pitch = pitch + pose["nod"]
    forward = _rot_y(np.stack([np.zeros(n), -np.sin(head_pitch), np.cos(head_pitch)], -1), twist)

    # Head: nose in front of the head centre, eyes slightly above and apart, ears on the sides.
    centre = neck + body.head * spine
    j[:, 0] = centre + body.face * forward
    for eye, ear, side in ((1, 3, LEFT), (2, 4, RIGHT)):
        j[:, eye] = centre + 0.8 * body.face * forward + 0.3 * body.face * spine + side * 0.45 * body.face * left
        j[:, ear] = centre + side * 0.9 * body.face * left - 0.1 * body.face * forward
    for s, side in _SIDES:
        o = 0 if side == LEFT else 1  # COCO: odd index = left
        shoulder = neck + side * body.shoulder_half * left
        upper = _rot_y(_limb_dir(pose[f"sh_abd_{s}"], pose[f"sh_flex_{s}"], side), twist)
        fore = _rot_y(_limb_dir(pose[f"fa_abd_{s}"], pose[f"fa_flex_{s}"], side), twist)
        j[:, 5 + o] = shoulder
        j[:, 7 + o] = shoulder + body.upper_arm * upper
        j[:, 9 + o] = j[:, 7 + o] + body.forearm * fore
        hip = pelvis + np.array([side * body.hip_half, 0.0, 0.0])
        thigh = _limb_dir(pose[f"th_abd_{s}"], pose[f"th_flex_{s}"], side)
        shin = _limb_dir(pose[f"th_abd_{s}"], pose[f"th_flex_{s}"] - pose[f"knee_{s}"], side)
        j[:, 11 + o] = hip
        j[:, 13 + o] = hip + body.thigh * thigh
        j[:, 15 + o] = j[:, 13 + o] + body.shin * shin

    ground = body.ankle_h - np.minimum(j[:, 15, 1], j[:, 16, 1])  # (T,)
    j[..., 1] += (ground + pose["lift"])[:, None]
    j = _rot_y(j, pose["yaw"])
    j[..., 0] += pose["root_x"][:, None]
    j[..., 2] += pose["root_z"][:, None]
    return j


# ----------------------------------------------------------------------------------------------
# Time profiles used by the action programs


def _deg(x: float) -> float:
    return float(np.deg2rad(x))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bump(u: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 over u in [0, 1]: a smooth rise over `rise`, a hold, a smooth fall over `fall`."""
    return _smoothstep(u / rise) * _smoothstep((1.0 - u) / fall)


def _smooth_noise(rng: np.random.Generator, tau: np.ndarray, count: int, max_hz: float = 0.6) -> np.ndarray:
    """Slowly varying noise (count, T) with unit standard deviation: a sum of 3 random sinusoids."""
    freq = rng.uniform(0.05, max_hz, (count, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, (count, 3, 1))
    return np.sqrt(2.0 / 3.0) * np.sin(2 * np.pi * freq * tau + phase).sum(axis=1)


def _active_window(rng: np.random.Generator, tau: np.ndarray, ramp: float = 0.35) -> np.ndarray:
    """Envelope (T,) of a continuous action: idle at the start and end, active for 70-100% of the clip."""
    dur = tau[-1]
    start = rng.uniform(0, 0.15) * dur
    stop = dur - rng.uniform(0, 0.15) * dur
    ramp = min(ramp, 0.25 * (stop - start))
    return _smoothstep((tau - start) / ramp) * _smoothstep((stop - tau) / ramp)


def _repetitions(rng: np.random.Generator, tau: np.ndarray, dur: float, max_reps: int) -> tuple[np.ndarray, np.ndarray]:
    """Place repetitions of a `dur`-second movement at random times in the clip: as many as fit (at
    most max_reps), or down to half of that; slower ones when few fill a long clip.

    Returns (u, k), each (T,): u in [0, 1] is the progress through the current repetition (0 outside
    any), k its index (-1 outside). Clips shorter than the movement get a faster one.
    """
    total = tau[-1]
    dur = min(dur, 0.9 * total)
    most = int(np.clip(np.floor(0.9 * total / dur), 1, max_reps))
    count = int(rng.integers((most + 1) // 2, most + 1))
    # Long clips with few repetitions get slower ones (up to 1.5x), so that the clip stays mostly busy.
    dur = float(np.clip(rng.uniform(0.6, 0.9) * total / count, dur, 1.5 * dur))
    gaps = rng.dirichlet(np.ones(count + 1)) * (total - count * dur)  # idle time before, between, after
    starts = np.cumsum(gaps[:-1]) + dur * np.arange(count)
    u, k = np.zeros_like(tau), np.full(tau.shape, -1)
    for i, s in enumerate(starts):
        inside = (tau >= s) & (tau < s + dur)
        u[inside] = (tau[inside] - s) / dur
        k[inside] = i
    return u, k


def _progress(u: np.ndarray, k: np.ndarray, ease: np.ndarray) -> np.ndarray:
    """Repetitions completed so far (T,), counting the current one by `ease` (T,) in [0, 1]."""
    seen = np.maximum.accumulate(k)  # index of the latest repetition started, -1 before the first
    return np.where(k >= 0, k + ease, seen + 1)


def _blend(pose: Pose, key: str, target: np.ndarray | float, w: np.ndarray) -> None:
    """pose[key] moves towards target with weight w (T,) in [0, 1]."""
    pose[key] = pose[key] + w * (target - pose[key])


def _steps(pose: Pose, tau: np.ndarray, w: np.ndarray, hz: float, amp: float) -> None:
    """Alternating small steps (legs lift in turn) with weight w (T,): used when turning or staggering."""
    phase = 2 * np.pi * hz * tau
    for s, sign in (("l", 1.0), ("r", -1.0)):
        lift = np.clip(sign * np.sin(phase), 0, None) * w * amp
        pose[f"th_flex_{s}"] = pose[f"th_flex_{s}"] + lift
        pose[f"knee_{s}"] = pose[f"knee_{s}"] + 1.6 * lift


# ----------------------------------------------------------------------------------------------
# Action programs: (rng, pose, tau, ctx) -> None, editing `pose` in place. tau (T,) is the clip's time
# in seconds, already warped by the subject's tempo and the clip's speed jitter, so durations and
# frequencies below are nominal. Two-person programs edit both poses.


@dataclass(frozen=True)
class _Ctx:
    amp: float  # movement size multiplier (subject and clip)
    side: str  # dominant side, "l" or "r"


def _other(s: str) -> str:
    return "r" if s == "l" else "l"


def _wave_arm(pose: Pose, s: str, w: np.ndarray, phase: np.ndarray, amp: float, high: float, swing: float) -> None:
    """Arm raised to the side, forearm up and swinging left-right; w (T,) the weight of the raise."""
    _blend(pose, f"sh_abd_{s}", _deg(high), w)
    _blend(pose, f"sh_flex_{s}", _deg(20), w)
    _blend(pose, f"fa_abd_{s}", _deg(158) + _deg(swing) * amp * np.sin(phase), w)
    _blend(pose, f"fa_flex_{s}", _deg(-12), w)


def _wave_one(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    w = _active_window(rng, tau)
    phase = 2 * np.pi * rng.uniform(1.5, 2.3) * tau + rng.uniform(0, 2 * np.pi)
    _wave_arm(pose, c.side, w, phase, c.amp, rng.uniform(70, 110), rng.uniform(18, 32))
    pose["lean"] = pose["lean"] - (1 if c.side == "l" else -1) * _deg(3) * w
    if rng.random() < 0.3:  # the free hand rests on the hip
        o = _other(c.side)
        _blend(pose, f"sh_abd_{o}", _deg(40), w)
        _blend(pose, f"fa_abd_{o}", _deg(-55), w)


def _wave_both(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    w = _active_window(rng, tau)
    phase = 2 * np.pi * rng.uniform(1.4, 2.2) * tau + rng.uniform(0, 2 * np.pi)
    # Mirrored (same phase, as abduction is per side) or parallel (half a cycle apart) waving.
    lag = 0.0 if rng.random() < 0.6 else np.pi
    high = rng.uniform(70, 110)
    for s, extra in ((c.side, 0.0), (_other(c.side), lag)):
        _wave_arm(
            pose,
            s,
            w,
            phase + extra,
            c.amp * rng.uniform(0.7, 1.1),
            high + rng.normal(0, 8),
            rng.uniform(15, 30),
        )


def _clap(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    w = _active_window(rng, tau)
    phase = 2 * np.pi * rng.uniform(2.0, 3.0) * tau
    closed = 0.5 + 0.5 * np.cos(phase)  # 1 when the hands meet
    flex = rng.uniform(25, 50)  # hands meet in front of the chest or the belly
    for s, _ in _SIDES:
        _blend(pose, f"sh_flex_{s}", _deg(flex), w)
        _blend(pose, f"sh_abd_{s}", _deg(20), w)
        _blend(pose, f"fa_flex_{s}", _deg(flex + 40), w)
        _blend(pose, f"fa_abd_{s}", _deg(45) - _deg(85) * c.amp * closed, w)


def _punch(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    guard = _active_window(rng, tau)
    for s, _ in _SIDES:  # fists up in front of the chin
        _blend(pose, f"sh_flex_{s}", _deg(30), guard)
        _blend(pose, f"sh_abd_{s}", _deg(18), guard)
        _blend(pose, f"fa_flex_{s}", _deg(125), guard)
        _blend(pose, f"fa_abd_{s}", _deg(-25), guard)
    u, k = _repetitions(rng, tau, rng.uniform(0.45, 0.75), max_reps=8)
    alternate = rng.random() < 0.35
    hit = _bump(u, 0.3, 0.5) * (k >= 0) * guard
    for s, sign in _SIDES:
        mine = (k % 2 == (0 if s == c.side else 1)) if alternate else np.full(k.shape, s == c.side)
        w = hit * mine
        _blend(pose, f"sh_flex_{s}", _deg(100), w)  # aimed at the face of an opponent
        _blend(pose, f"sh_abd_{s}", _deg(-10), w)
        _blend(pose, f"fa_flex_{s}", _deg(90), w)
        _blend(pose, f"fa_abd_{s}", _deg(-8), w)
        pose["twist"] = pose["twist"] - sign * _deg(30) * c.amp * w  # the punching shoulder comes forward
        pose["pitch"] = pose["pitch"] + _deg(8) * w


def _kick(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, _ = _repetitions(rng, tau, rng.uniform(0.8, 1.3), max_reps=5)
    height = _deg(rng.uniform(55, 90) * c.amp)
    thigh = height * _bump(u, 0.4, 0.45)
    shin = np.minimum(height * _bump(np.clip((u - 0.15) / 0.7, 0, 1), 0.5, 0.4), thigh)  # knee unfolds late
    s = c.side
    pose[f"th_flex_{s}"] = pose[f"th_flex_{s}"] + thigh
    pose[f"knee_{s}"] = pose[f"knee_{s}"] + thigh - shin
    w = _bump(u, 0.3, 0.3)
    pose[f"knee_{_other(s)}"] = pose[f"knee_{_other(s)}"] + _deg(10) * w
    pose["pitch"] = pose["pitch"] - _deg(10) * w
    for side, _ in _SIDES:  # arms out for balance
        _blend(pose, f"sh_abd_{side}", _deg(rng.uniform(15, 40)), w)


def _squat(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, _ = _repetitions(rng, tau, rng.uniform(1.5, 2.5), max_reps=5)
    w = _bump(u, 0.35, 0.35)
    depth = rng.uniform(0.75, 1.0) * c.amp
    arms_forward = rng.random() < 0.6
    for s, _ in _SIDES:
        pose[f"th_flex_{s}"] = pose[f"th_flex_{s}"] + _deg(100) * depth * w
        pose[f"knee_{s}"] = pose[f"knee_{s}"] + _deg(120) * depth * w
        if arms_forward:
            _blend(pose, f"sh_flex_{s}", _deg(80), w)
            _blend(pose, f"fa_flex_{s}", _deg(85), w)
    pose["pitch"] = pose["pitch"] + _deg(rng.uniform(10, 30)) * depth * w


def _jump(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, k = _repetitions(rng, tau, rng.uniform(0.8, 1.3), max_reps=6)
    on = k >= 0
    crouch = _bump(np.clip(u / 0.38, 0, 1), 0.5, 0.3) * on  # prepare, then push off
    flight = np.clip((u - 0.38) / 0.37, 0, 1)
    airborne = np.sin(np.pi * flight) * on
    land = _bump(np.clip((u - 0.72) / 0.28, 0, 1), 0.3, 0.6) * on
    bend = crouch + 0.6 * land
    depth = rng.uniform(0.5, 1.0)
    for s, _ in _SIDES:
        pose[f"th_flex_{s}"] = pose[f"th_flex_{s}"] + _deg(55) * depth * bend + _deg(15) * airborne
        pose[f"knee_{s}"] = pose[f"knee_{s}"] + _deg(85) * depth * bend + _deg(25) * airborne
        pose[f"sh_flex_{s}"] = pose[f"sh_flex_{s}"] - _deg(35) * crouch
        _blend(pose, f"sh_flex_{s}", _deg(rng.uniform(40, 150)), airborne)
    pose["pitch"] = pose["pitch"] + _deg(25) * depth * bend
    pose["lift"] = pose["lift"] + rng.uniform(0.12, 0.35) * c.amp * airborne


def _bow(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, _ = _repetitions(rng, tau, rng.uniform(1.5, 2.8), max_reps=4)
    w = _bump(u, 0.35, 0.35)
    pose["pitch"] = pose["pitch"] + _deg(rng.uniform(50, 80) * c.amp) * w
    pose["nod"] = pose["nod"] + _deg(10) * w
    pose["root_z"] = pose["root_z"] - 0.08 * w  # hips go back to keep the balance
    for s, _ in _SIDES:
        pose[f"knee_{s}"] = pose[f"knee_{s}"] + _deg(rng.uniform(0, 10)) * w
        pose[f"th_flex_{s}"] = pose[f"th_flex_{s}"] + _deg(5) * w
    if rng.random() < 0.4:  # hands folded in front instead of hanging
        for s, _ in _SIDES:
            _blend(pose, f"sh_flex_{s}", _deg(25), w)
            _blend(pose, f"fa_abd_{s}", _deg(-35), w)
            _blend(pose, f"fa_flex_{s}", _deg(50), w)


def _raise_arms(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, _ = _repetitions(rng, tau, rng.uniform(1.6, 3.0), max_reps=4)
    w = _bump(u, 0.3, 0.3)
    top = min(rng.uniform(145, 178) * c.amp, 178)  # straight arms above the head
    sideways = rng.random() < 0.5
    for s, _ in _SIDES:
        if sideways:
            _blend(pose, f"sh_abd_{s}", _deg(top), w)
            _blend(pose, f"fa_abd_{s}", _deg(top + 5), w)
        else:
            _blend(pose, f"sh_flex_{s}", _deg(top), w)
            _blend(pose, f"fa_flex_{s}", _deg(top + 5), w)
    pose["pitch"] = pose["pitch"] - _deg(5) * w


def _walk(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    """Back and forth along a random heading, turning at both ends (so it also contains turns)."""
    hz = rng.uniform(0.75, 1.0)  # gait cycles (two steps) per second
    speed = rng.uniform(0.55, 0.8) * hz * 1.1 * c.amp  # metres per second
    half = rng.uniform(0.6, 1.2)  # half the length of the path, metres
    s = speed * tau + rng.uniform(0, 4 * half)  # distance walked, starting anywhere on the path
    arc = np.pi * s / (2 * half)
    along = (2 * half / np.pi) * np.arcsin(np.sin(arc))  # triangle wave in [-half, half]
    heading = rng.uniform(-np.pi, np.pi)
    back = 0.5 - 0.5 * np.tanh(4.0 * np.cos(arc))  # 0 walking one way, 1 the other, smooth turns
    pose["yaw"] = pose["yaw"] + heading + np.pi * back
    pose["root_x"] = pose["root_x"] + along * np.sin(heading)
    pose["root_z"] = pose["root_z"] + along * np.cos(heading)
    phase = 2 * np.pi * hz * tau + rng.uniform(0, 2 * np.pi)
    stride = _deg(rng.uniform(18, 28)) * c.amp
    for side, sign in (("l", 1.0), ("r", -1.0)):
        swing = sign * np.sin(phase)
        pose[f"th_flex_{side}"] = pose[f"th_flex_{side}"] + stride * swing
        pose[f"knee_{side}"] = (
            pose[f"knee_{side}"] + _deg(8) + _deg(50) * np.clip(sign * np.cos(phase - 0.4), 0, None) ** 1.5
        )
        pose[f"sh_flex_{side}"] = pose[f"sh_flex_{side}"] - 0.8 * stride * swing  # arms swing against the legs
        pose[f"fa_flex_{side}"] = pose[f"fa_flex_{side}"] + _deg(10) - 0.6 * stride * swing


def _turn(rng: np.random.Generator, pose: Pose, tau: np.ndarray, c: _Ctx) -> None:
    u, k = _repetitions(rng, tau, rng.uniform(1.4, 2.4), max_reps=3)
    direction = rng.choice([-1.0, 1.0])
    pose["yaw"] = pose["yaw"] + direction * np.pi * _progress(u, k, _smoothstep(u))
    _steps(pose, tau, _bump(u, 0.15, 0.15), rng.uniform(1.6, 2.2), _deg(18) * c.amp)


def _handshake(rng: np.random.Generator, poses: list[Pose], tau: np.ndarray, c: _Ctx) -> None:
    u, _ = _repetitions(rng, tau, rng.uniform(1.8, 3.5), max_reps=3)
    w = _bump(u, 0.3, 0.3)
    shake = np.sin(2 * np.pi * rng.uniform(2.5, 4.0) * tau) * _bump(u, 0.4, 0.4)
    for i, pose in enumerate(poses):
        lag = 0.08 * i  # the partner answers a little later
        wi = np.interp(tau - lag, tau, w)
        _blend(pose, "sh_flex_r", _deg(45) + _deg(7) * c.amp * shake, wi)
        _blend(pose, "sh_abd_r", _deg(-10), wi)
        _blend(pose, "fa_flex_r", _deg(75) + _deg(7) * c.amp * shake, wi)
        _blend(pose, "fa_abd_r", _deg(-12), wi)
        pose["pitch"] = pose["pitch"] + _deg(6) * wi


def _push(rng: np.random.Generator, poses: list[Pose], tau: np.ndarray, c: _Ctx) -> None:
    u, k = _repetitions(rng, tau, rng.uniform(1.1, 1.9), max_reps=4)
    w = _bump(u, 0.3, 0.5)
    pusher, pushed = poses
    for s, _ in _SIDES:
        _blend(pusher, f"sh_flex_{s}", _deg(80) * c.amp, w)
        _blend(pusher, f"sh_abd_{s}", _deg(8), w)
        _blend(pusher, f"fa_flex_{s}", _deg(85), w)
        _blend(pusher, f"fa_abd_{s}", _deg(-6), w)
    pusher["pitch"] = pusher["pitch"] + _deg(12) * w
    # The pushed person staggers back (and stays there) shortly after the contact.
    hit = _smoothstep(np.clip((u - 0.3) / 0.4, 0, 1)) * (k >= 0)
    shove = rng.uniform(0.15, 0.3) * c.amp
    moved = _progress(u, k, hit)
    pushed["root_z"] = pushed["root_z"] - shove * moved
    pusher["root_z"] = pusher["root_z"] + shove * moved  # and the pusher follows
    react = _bump(np.clip((u - 0.25) / 0.6, 0, 1), 0.3, 0.5) * (k >= 0)
    pushed["pitch"] = pushed["pitch"] - _deg(15) * react
    for s, _ in _SIDES:
        _blend(pushed, f"sh_abd_{s}", _deg(rng.uniform(20, 50)), react)
    _steps(pushed, tau, react, 2.0, _deg(15))
    _steps(pusher, tau, w, 1.8, _deg(10))


def _idle(rng: np.random.Generator, pose: Pose, tau: np.ndarray) -> None:
    """A passive bystander: one of a few resting postures, with a little fidgeting."""
    kind = rng.integers(4)
    for s, _ in _SIDES:
        if kind == 1:  # arms crossed
            pose[f"sh_flex_{s}"][:] = _deg(25)
            pose[f"fa_flex_{s}"][:] = _deg(80)
            pose[f"fa_abd_{s}"][:] = _deg(-70)
        elif kind == 2:  # hands on the hips
            pose[f"sh_abd_{s}"][:] = _deg(40)
            pose[f"fa_abd_{s}"][:] = _deg(-55)
    if kind == 3:  # looks at something in one hand
        pose["sh_flex_r"][:] = _deg(25)
        pose["fa_flex_r"][:] = _deg(95)
        pose["nod"][:] = _deg(20)
    noise = _smooth_noise(rng, tau, 4, max_hz=0.4)
    pose["sh_flex_l"] = pose["sh_flex_l"] + _deg(8) * noise[0]
    pose["sh_flex_r"] = pose["sh_flex_r"] + _deg(8) * noise[1]
    pose["lean"] = pose["lean"] + _deg(2) * noise[2]
    pose["yaw"] = pose["yaw"] + _deg(10) * noise[3]


_ONE_PERSON: dict[str, Callable[[np.random.Generator, Pose, np.ndarray, _Ctx], None]] = {
    "wave one hand": _wave_one,
    "wave both hands": _wave_both,
    "clap": _clap,
    "punch": _punch,
    "kick": _kick,
    "squat": _squat,
    "jump": _jump,
    "bow": _bow,
    "raise both arms": _raise_arms,
    "walk": _walk,
    "turn around": _turn,
}
_TWO_PERSON: dict[str, Callable[[np.random.Generator, list[Pose], np.ndarray, _Ctx], None]] = {
    "handshake": _handshake,
    "push": _push,
}
assert set(_ONE_PERSON) | set(_TWO_PERSON) == set(CLASS_NAMES) and set(_TWO_PERSON) == TWO_PERSON


def _posture_noise(rng: np.random.Generator, pose: Pose, tau: np.ndarray) -> None:
    """Per-clip posture offsets (~3 degrees) plus slow drift (~2 degrees) on every angle."""
    drift = _smooth_noise(rng, tau, len(_ANGLES))
    for i, key in enumerate(_ANGLES):
        pose[key] = pose[key] + _deg(3) * rng.normal() + _deg(2) * drift[i]
    for s, _ in _SIDES:  # knees do not bend backwards
        pose[f"knee_{s}"] = np.abs(pose[f"knee_{s}"])


# ----------------------------------------------------------------------------------------------
# Scene, camera and detector


# Base confidence per COCO-17 joint: the face and trunk are easy, wrists and ankles harder.
_BASE_SCORE = np.array(
    [0.94, 0.93, 0.93, 0.88, 0.88, 0.92, 0.92, 0.87, 0.87, 0.82, 0.82, 0.89, 0.89, 0.86, 0.86, 0.81, 0.81]
)


def _project(world: np.ndarray, cam: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points (..., 3) in metres; returns pixels (..., 2) and depth (...)."""
    depth = cam["dist"] - world[..., 2]
    u = cam["cx"] + cam["f"] * (world[..., 0] + cam["x0"]) / depth
    v = cam["cy"] - cam["f"] * (world[..., 1] - cam["height"]) / depth
    return np.stack([u, v], axis=-1), depth


def _detect(
    rng: np.random.Generator,
    pix: np.ndarray,
    depth: np.ndarray,
    tau: np.ndarray,
    height_m: np.ndarray,
    f: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like keypoints and scores from exact projections.

    pix: (M, T, 17, 2) pixels; depth: (M, T, 17) metres; height_m: (M,) body heights.
    Returns keypoint (M, T, 17, 2) and score (M, T, 17), float64, missing joints already zeroed.
    """
    m, n = pix.shape[:2]
    torso_depth = depth[:, :, [5, 6, 11, 12]].mean(axis=-1, keepdims=True)  # (M, T, 1)
    size_px = f * height_m[:, None, None] / torso_depth  # (M, T, 1) apparent body height
    speed = np.zeros((m, n, 17))
    speed[:, 1:] = np.linalg.norm(np.diff(pix, axis=1), axis=-1)
    speed[:, 0] = speed[:, min(1, n - 1)]
    fast = 0.3 * np.clip(speed / size_px / 0.06, 0, 1)  # motion blur
    hidden = 0.3 * np.clip((depth - torso_depth - 0.05) / 0.2, 0, 1)  # behind the body (self-occlusion)
    small = 0.15 * np.clip((380.0 - size_px) / 200.0, 0, 1)
    wobble = 0.05 * _smooth_noise(rng, tau, m * 17, max_hz=1.0).reshape(m, 17, n).transpose(0, 2, 1)
    score = _BASE_SCORE - fast - hidden - small + wobble + rng.normal(0, 0.03, (m, n, 17))
    if m == 2:  # joints behind the other person's box are partly occluded
        lo, hi = pix.min(axis=2), pix.max(axis=2)  # (M, T, 2)
        for a, b in ((0, 1), (1, 0)):
            inside = np.all((pix[a] > lo[b][:, None]) & (pix[a] < hi[b][:, None]), axis=-1)  # (T, 17)
            behind = depth[a] > torso_depth[b]
            score[a] -= 0.25 * (inside & behind)
    score = np.clip(score, 0.05, 0.99)
    sigma = (0.003 + 0.01 * (1.0 - score)) * size_px  # localisation error grows as confidence drops
    kp = pix + rng.normal(size=pix.shape) * sigma[..., None]

    missing = np.zeros((m, n, 17), bool)
    for p in range(m):
        if rng.random() < 0.25:  # the detector loses the whole person for a few frames
            for _ in range(rng.integers(1, 3)):
                length = int(rng.integers(1, max(2, min(10, n // 5)) + 1))
                start = int(rng.integers(0, max(1, n - length)))
                missing[p, start : start + length] = True
    if rng.random() < 0.3:  # isolated joint drop-outs, mostly on low-confidence joints
        missing |= rng.random((m, n, 17)) < rng.uniform(0.005, 0.03) * (1.5 - score)
    kp[missing] = 0.0
    score[missing] = 0.0
    return kp, score


def _make_clip(
    rng: np.random.Generator, label: int, subject: Subject, rep: int, min_frames: int, max_frames: int
) -> dict:
    """One pyskl annotation dict for class `label` performed by `subject`.

    Every random number comes from `rng`, drawn stage by stage in this order: length and time warp, clip
    style (amplitude, side), the action with its partner or bystander, the camera and its view, each
    person's posture noise, the camera's intrinsics and place, the detector and its person order, the setup
    id. Changing that order, or a draw inside a stage, changes every clip of the dataset.
    """
    name = CLASS_NAMES[label]
    n, tau = _clip_time(rng, subject.tempo, min_frames, max_frames)
    ctx = _Ctx(
        amp=subject.amplitude * rng.uniform(0.88, 1.12),
        side="r" if rng.random() < subject.p_right else "l",
    )
    poses, bodies, facing, xs = _perform(rng, name, subject, n, tau, ctx)

    # Scene: persons placed and turned, then all of it seen from camera C001/C002/C003 (+- 12 degrees).
    camera = int(rng.integers(1, 4))
    world = _scene(rng, camera, poses, bodies, facing, xs, tau)  # (M, T, 17, 3)
    kp, score = _camera_detections(rng, world, subject, bodies, tau)
    kp16, score = _in_frame(kp, score)
    setup = int(rng.integers(1, 18))
    return {
        "frame_dir": f"S{setup:03d}C{camera:03d}P{subject.index:03d}R{rep + 1:03d}A{label + 1:03d}",
        "label": label,
        "img_shape": IMG_SHAPE,
        "original_shape": IMG_SHAPE,
        "total_frames": n,
        "keypoint": np.ascontiguousarray(kp16),
        "keypoint_score": np.ascontiguousarray(score.astype(np.float16)),
    }


def _clip_time(rng: np.random.Generator, tempo: float, min_frames: int, max_frames: int) -> tuple[int, np.ndarray]:
    """A clip's length n, drawn log-uniformly in [min_frames, max_frames], and its warped time tau (n,) in
    seconds: the subject's `tempo` times a per-clip speed, varying a little within the clip."""
    n = int(np.round(np.exp(rng.uniform(np.log(min_frames), np.log(max_frames + 0.5)))))
    n = int(np.clip(n, min_frames, max_frames))
    # Warped time: the tempo varies a little within the clip (+-10%).
    rate = tempo * rng.uniform(0.88, 1.12) * (1.0 + 0.1 * _smooth_noise(rng, np.arange(n) / FPS, 1)[0])
    tau = np.concatenate([[0.0], np.cumsum(rate[:-1])]) / FPS
    return n, tau


def _perform(
    rng: np.random.Generator, name: str, subject: Subject, n: int, tau: np.ndarray, ctx: _Ctx
) -> tuple[list[Pose], list[Body], list[float], list[float]]:
    """The persons of a clip of action `name`: the subject performing it with a partner (two-person
    actions), or alone and sometimes beside an idle bystander (P_IDLE_PARTNER).

    Returns (poses, bodies, facing, xs), one entry per person (M = 1 or 2), the subject first: its Pose
    (each key (n,)), its Body, the direction it faces (yaw, radians) and its place along x (metres).
    """
    actor = _rest_pose(n, subject.arm_rest)
    bodies = [subject.body]
    if name in TWO_PERSON:
        partner = _rest_pose(n, _deg(rng.uniform(4, 14)))
        bodies.append(_random_body(rng, rng.uniform(1.52, 1.90)))
        _TWO_PERSON[name](rng, [actor, partner], tau, ctx)
        poses = [actor, partner]
        gap = rng.uniform(0.95, 1.2) if name == "handshake" else rng.uniform(0.8, 1.0)
        facing = [np.pi / 2, -np.pi / 2]  # face each other along the x axis
        xs = [-gap / 2, gap / 2]
    else:
        _ONE_PERSON[name](rng, actor, tau, ctx)
        poses = [actor]
        facing, xs = [0.0], [0.0]
        if rng.random() < P_IDLE_PARTNER:
            bystander = _rest_pose(n, _deg(rng.uniform(4, 14)))
            _idle(rng, bystander, tau)
            poses.append(bystander)
            bodies.append(_random_body(rng, rng.uniform(1.52, 1.90)))
            side = rng.choice([-1.0, 1.0])
            facing.append(rng.uniform(-np.pi / 3, np.pi / 3) - side * rng.uniform(0, np.pi / 3))
            gap = rng.uniform(0.9, 1.6)
            xs = [-side * gap / 2, side * gap / 2]
    return poses, bodies, facing, xs


def _scene(
    rng: np.random.Generator,
    camera: int,
    poses: list[Pose],
    bodies: list[Body],
    facing: list[float],
    xs: list[float],
    tau: np.ndarray,
) -> np.ndarray:
    """World joint positions (M, T, 17, 3) in metres of the persons (posture noise added, posed, turned
    and placed) as seen from `camera` (1, 2 or 3: 0, +45 or -45 degrees, each +- 12 degrees)."""
    n = len(tau)
    view = {1: 0.0, 2: _deg(45), 3: _deg(-45)}[camera] + _deg(rng.normal(0, 12))
    world = []
    for pose, body, face, x in zip(poses, bodies, facing, xs, strict=True):
        _posture_noise(rng, pose, tau)
        joints = _forward_kinematics(pose, body)  # (T, 17, 3) in the person's frame
        joints = _rot_y(joints, np.full(n, face))
        joints[..., 0] += x
        world.append(_rot_y(joints, np.full(n, view)))
    return np.stack(world)  # (M, T, 17, 3)


def _camera_detections(
    rng: np.random.Generator, world: np.ndarray, subject: Subject, bodies: list[Body], tau: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World joints (M, T, 17, 3) through a pinhole camera at the subject's preferred distance and offset
    (_project) and a detector (_detect). Returns keypoint (M, T, 17, 2) pixels and score (M, T, 17),
    float64, the persons in an arbitrary order."""
    cam = {
        "f": rng.uniform(950, 1150),
        "cx": IMG_SHAPE[1] / 2 + rng.normal(0, 30),
        "cy": rng.uniform(430, 560),  # horizon row: the camera tilts a little
        "height": rng.uniform(0.9, 1.2),
        "dist": subject.depth_pref + rng.uniform(-0.4, 0.6),
        "x0": subject.x_pref + rng.uniform(-0.4, 0.4),
    }
    pix, depth = _project(world.reshape(-1, 17, 3), cam)
    pix, depth = pix.reshape(*world.shape[:3], 2), depth.reshape(world.shape[:3])
    heights = np.array([b.torso + b.thigh + b.shin + b.ankle_h + b.head + b.face for b in bodies])
    kp, score = _detect(rng, pix, depth, tau, heights, cam["f"])
    if len(world) == 2 and rng.random() < 0.5:  # the detector's person order is arbitrary
        kp, score = kp[::-1], score[::-1]
    return kp, score


def _in_frame(kp: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (M, T, 17, 2) rounded to float16, and joints that fall outside the image zeroed in both
    them and score (M, T, 17), which is edited in place and returned (still float64)."""
    kp16 = kp.astype(np.float16)
    h, w = IMG_SHAPE
    # Joints outside the image (checked after rounding) are missing, as for a detector.
    outside = (kp16[..., 0] < 0) | (kp16[..., 0] > w - 1) | (kp16[..., 1] < 0) | (kp16[..., 1] > h - 1)
    kp16[outside] = 0
    score[outside] = 0
    return kp16, score


# ----------------------------------------------------------------------------------------------
# Public API


def val_subjects(num_subjects: int) -> list[int]:
    """1-based subject ids of the xsub_val split: the last 30% (rounded, at least one)."""
    n_val = max(1, int(round(VAL_FRACTION * num_subjects)))
    return list(range(num_subjects - n_val + 1, num_subjects + 1))


def make_synthetic(
    num_classes: int = DEFAULT_NUM_CLASSES,
    clips_per_class_per_subject: int = 2,
    num_subjects: int = 10,
    seed: int = 0,
    min_frames: int = 30,
    max_frames: int = 300,
) -> dict:
    """Generate the synthetic dataset in pyskl format.

    num_classes: the first `num_classes` of `class_names()` (at most 13; 12 by default, which leaves
        out "turn around").
    clips_per_class_per_subject: the size knob; the dataset has num_classes * num_subjects * this clips.
        The default (12 x 10 x 2 = 240 clips) keeps a CPU training demo short.
    num_subjects: at least 2; see `val_subjects` for the split.
    seed: non-negative; a different seed gives different subjects and clips.
    min_frames, max_frames: clip lengths T are drawn log-uniformly in [min_frames, max_frames], 30 fps.

    Returns {'split': {'xsub_train': [frame_dir, ...], 'xsub_val': [...]}, 'annotations': [...]}, where each
    annotation holds frame_dir (NTU style SsssCcccPpppRrrrAaaa, A = label + 1), label, img_shape and
    original_shape (1080, 1920), total_frames T, keypoint float16 (M, T, 17, 2) in pixels (x, y), COCO-17
    order, and keypoint_score float16 (M, T, 17); M is 1 or 2. Missing joints have coordinates 0, score 0.
    """
    class_names(num_classes)  # validates num_classes
    if clips_per_class_per_subject < 1:
        raise ValueError(f"clips_per_class_per_subject must be >= 1, got {clips_per_class_per_subject}")
    if num_subjects < 2:
        raise ValueError(f"num_subjects must be >= 2 (train and val subjects), got {num_subjects}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 8 <= min_frames <= max_frames:
        raise ValueError(f"need 8 <= min_frames <= max_frames, got {min_frames}, {max_frames}")

    held_out = set(val_subjects(num_subjects))
    split: dict[str, list[str]] = {"xsub_train": [], "xsub_val": []}
    annotations = []
    for index in range(1, num_subjects + 1):
        subject = _make_subject(np.random.default_rng([seed, 0, index]), index)
        for label in range(num_classes):
            for rep in range(clips_per_class_per_subject):
                rng = np.random.default_rng([seed, 1, index, label, rep])
                ann = _make_clip(rng, label, subject, rep, min_frames, max_frames)
                annotations.append(ann)
                split["xsub_val" if index in held_out else "xsub_train"].append(ann["frame_dir"])
    return {"split": split, "annotations": annotations}


def cache_name(
    num_classes: int = DEFAULT_NUM_CLASSES,
    clips_per_class_per_subject: int = 2,
    num_subjects: int = 10,
    seed: int = 0,
    min_frames: int = 30,
    max_frames: int = 300,
) -> str:
    """File name that encodes every option and the generator version."""
    return (
        f"synthetic_v{GENERATOR_VERSION}_c{num_classes}_k{clips_per_class_per_subject}_s{num_subjects}"
        f"_seed{seed}_t{min_frames}-{max_frames}.pkl"
    )


def load_or_create_synthetic(cache_dir: Path, **options: int) -> Path:
    """Path of the cached synthetic pickle for `options` (those of `make_synthetic`), generating it first
    if it is absent. The file is written atomically (utils/atomic.atomic_write), so concurrent or
    interrupted runs never leave a partial cache behind.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / cache_name(**options)
    if path.is_file():
        return path
    data = make_synthetic(**options)
    with atomic_write(path, "wb", flag="--data_root") as f:
        pickle.dump(data, f, protocol=4)
    return path
