"""datasets/batch/render.py: golden pyskl volumes, the loop reference, and the properties of each format."""

import pickle

import numpy as np
import pytest
import torch

import datasets.batch.render as R
from bench.render_loop import render_batch, render_clip
from datasets.store.layouts import COCO17
from tests.conftest import FIXTURES, shared_or_skip

GOLDEN = FIXTURES / "heatmaps" / "golden.npz"
CASES = ("a_1person_56", "b_2person_edges_32", "c_2person_short_limbs_32")
ATOL = {"kp": 1e-6, "kp_noscore": 1e-6, "kp_double": 1e-6, "limb": 5e-6}


def _dense(z, prefix: str) -> np.ndarray:
    """A volume stored sparsely by tests/fixtures/heatmaps/build.py."""
    out = np.zeros(int(np.prod(z[f"{prefix}.shape"])), dtype=np.float32)
    out[z[f"{prefix}.index"]] = z[f"{prefix}.value"]
    return out.reshape(z[f"{prefix}.shape"])


def _pyskl_layout(volume: torch.Tensor, double: bool) -> np.ndarray:
    """Our (N, C, T, H, W) as pyskl's `imgs`: (T, C, H, W), or (2T, C, H, W) with the flipped view last."""
    if double:  # (2, C, T, H, W): [clip, flipped clip]
        volume = volume.transpose(1, 2).flatten(0, 1)  # (2T, C, H, W)
    else:
        volume = volume[0].transpose(0, 1)  # (T, C, H, W)
    return volume.numpy()


def _render_variant(variant: str, kp: np.ndarray, score: np.ndarray, size) -> np.ndarray:
    """Render one golden variant for one pyskl clip (kp (M, T, V, 2), score (M, T, V))."""
    fmt = "Limb" if variant == "limb" else "Heatmap"
    out = R.render(
        fmt,
        torch.from_numpy(kp)[None],
        torch.from_numpy(score)[None],
        size,
        use_score=variant != "kp_noscore",
        double=variant == "kp_double",
    )
    return _pyskl_layout(out, variant == "kp_double")


def _fixture_variants():
    z = np.load(GOLDEN)
    return [(c, v) for c in CASES for v in ATOL if f"{c}.{v}.frames" in z]


@pytest.mark.parametrize("case,variant", _fixture_variants())
def test_golden_fixture(case, variant):
    z = np.load(GOLDEN)
    size = tuple(int(s) for s in z[f"{case}.img_shape"])
    ours = _render_variant(variant, z[f"{case}.keypoint"], z[f"{case}.keypoint_score"], size)
    frames = z[f"{case}.{variant}.frames"]
    np.testing.assert_allclose(ours[frames], _dense(z, f"{case}.{variant}"), rtol=0, atol=ATOL[variant])


def test_golden_pipeline_fixture():
    """FormatShape('NCTHW_Heatmap') output of the pyskl validation pipeline: (1, 17, T, 56, 56)."""
    z = np.load(GOLDEN)
    kp, score = torch.from_numpy(z["pipeline.keypoint"])[None], torch.from_numpy(z["pipeline.keypoint_score"])[None]
    ours = R.render("NCTHW_Heatmap", kp, score, tuple(int(s) for s in z["pipeline.img_shape"]))
    frames = torch.from_numpy(z["pipeline.imgs.frames"])
    np.testing.assert_allclose(ours[:, :, frames].numpy(), _dense(z, "pipeline.imgs"), rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_golden_shared_full(case):
    """Every full volume of ../shared/golden/heatmaps (skipped when ../shared is absent)."""
    folder = shared_or_skip("golden", "heatmaps")
    with open(folder / f"{case}.pkl", "rb") as f:
        ann = pickle.load(f)
    golden = np.load(folder / f"{case}.npz")
    for variant in ATOL:
        ours = _render_variant(variant, ann["keypoint"], ann["keypoint_score"], tuple(ann["img_shape"]))
        np.testing.assert_allclose(ours, golden[variant], rtol=0, atol=ATOL[variant], err_msg=variant)


def test_golden_shared_pipeline():
    z = np.load(shared_or_skip("golden", "pipeline", "val_c24_s56.npz"))
    kp, score = torch.from_numpy(z["resize.keypoint"])[None], torch.from_numpy(z["decode.keypoint_score"])[None]
    ours = R.render("NCTHW_Heatmap", kp, score, tuple(int(s) for s in z["resize.img_shape"]))
    np.testing.assert_allclose(ours.numpy(), z["imgs"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_loop_reference_matches_golden(case):
    """The loop reference (the bench baseline, and the oracle of the random tests) is itself right."""
    z = np.load(GOLDEN)
    kp, score = z[f"{case}.keypoint"], z[f"{case}.keypoint_score"]
    size = tuple(int(s) for s in z[f"{case}.img_shape"])
    for variant, limbs, use_score in (("kp", None, True), ("kp_noscore", None, False), ("limb", COCO17.limbs, True)):
        ours = render_clip(kp, score, size, use_score=use_score, limbs=limbs).transpose(1, 0, 2, 3)
        frames = z[f"{case}.{variant}.frames"]
        np.testing.assert_allclose(ours[frames], _dense(z, f"{case}.{variant}"), rtol=0, atol=ATOL[variant])


def _random_clips(seed: int, n: int, m: int, t: int, size: tuple[int, int]):
    """Keypoints in and around the frame, overlapping persons, missing joints, sub-EPS and short limbs."""
    rng = np.random.default_rng(seed)
    h, w = size
    kp = rng.uniform(-4, 1, (n, m, t, 17, 2)) + rng.uniform(0, 1, (n, m, t, 17, 2)) * [w + 6, h + 6]
    kp[:, 1:] = kp[:, :1] + rng.normal(0, 1.5, kp[:, 1:].shape)  # persons overlapping each other
    kp[:, :, :, 7] = kp[:, :, :, 5] + rng.uniform(-0.8, 0.8, (n, m, t, 2))  # short limbs (5, 7)
    kp[:, :, 0, 9] = kp[:, :, 0, 7]  # zero-length limb (7, 9)
    score = rng.uniform(0, 1, (n, m, t, 17))
    score[rng.random(score.shape) < 0.1] = 5e-4  # below EPS
    missing = rng.random(score.shape) < 0.1
    kp[missing], score[missing] = 0, 0
    return kp.astype(np.float32), score.astype(np.float32)


@pytest.mark.parametrize("size", [(32, 40), (3, 4)])
@pytest.mark.parametrize("use_score", [True, False])
def test_matches_loop_reference_on_random_clips(size, use_score, monkeypatch):
    # A tiny chunk makes the renderer evaluate windows in many steps that straddle persons.
    monkeypatch.setattr(R, "_CHUNK", 150)
    monkeypatch.setattr(R, "_LIMB_CHUNK", 150)
    kp, score = _random_clips(0, n=2, m=3, t=3, size=size)
    for limbs, atol in ((None, 1e-6), (COCO17.limbs, 5e-6)):
        reference = render_batch(kp, score, size, use_score=use_score, limbs=limbs)
        args = (torch.from_numpy(kp), torch.from_numpy(score), size)
        if limbs is None:
            ours = R.render_joint_heatmaps(*args, use_score=use_score)
        else:
            ours = R.render_limb_heatmaps(*args, limbs, use_score=use_score)
        assert ours.dtype == torch.float32 and ours.shape == reference.shape
        np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=atol)


@pytest.mark.parametrize(
    "bucket_cost,max_candidates",
    [(R._BUCKET_COST, R._MAX_CANDIDATES), (0, R._MAX_CANDIDATES), (float("inf"), R._MAX_CANDIDATES), (0, 8)],
    ids=["default", "a-shape-per-box-shape", "one-shape", "rounded-shapes"],
)
def test_limbs_match_loop_with_any_window_shapes(bucket_cost, max_candidates, monkeypatch):
    """Limb boxes of every size and orientation, overlapping persons: whatever window shapes the renderer
    picks (exact boxes, one window for all, rounded shapes), its limbs are the loop's to float32 rounding
    (tighter than the golden tolerance: only exp() differs) and it draws nothing outside the boxes."""
    monkeypatch.setattr(R, "_BUCKET_COST", bucket_cost)
    monkeypatch.setattr(R, "_MAX_CANDIDATES", max_candidates)
    monkeypatch.setattr(R, "_LIMB_CHUNK", 2000 if bucket_cost < float("inf") else 1 << 17)  # several chunks a shape
    size = (48, 64)
    kp, score = _random_clips(7, n=2, m=3, t=4, size=size)
    reference = render_batch(kp, score, size, limbs=COCO17.limbs)
    ours = R.render_limb_heatmaps(torch.from_numpy(kp), torch.from_numpy(score), size, COCO17.limbs).numpy()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    assert not np.any((ours != 0) & (reference == 0))


def test_window_shapes_cover_every_box(monkeypatch):
    rng = np.random.default_rng(0)
    hist = np.zeros((30, 12), dtype=np.int64)  # boxes: long side (rows) x short side (columns)
    long = rng.integers(4, 30, 60)
    hist[long, np.minimum(rng.integers(3, 12, 60), long)] = rng.integers(1, 5000, 60)
    cells = np.argwhere(hist > 0)
    for cost, max_candidates in ((32768, 256), (0, 256), (float("inf"), 256), (32768, 8)):
        monkeypatch.setattr(R, "_MAX_CANDIDATES", max_candidates)
        shapes, table = R._window_shapes(hist, cost)
        assert 1 <= len(shapes) <= R._MAX_SHAPES
        fits = (shapes[:, None] >= cells[None]).all(axis=2)  # (S, K)
        assigned = table[cells[:, 0], cells[:, 1]]
        assert fits[assigned, np.arange(len(cells))].all()  # every box fits its window
        area = np.where(fits, shapes.prod(axis=1)[:, None], np.inf)
        assert (area[assigned, np.arange(len(cells))] == area.min(axis=0)).all()  # the smallest that fits
        if cost == float("inf"):
            assert shapes.tolist() == [cells.max(axis=0).tolist()]  # one window for all
        if cost == 0 and max_candidates == 256:
            padded = (area.min(axis=0) * hist[cells[:, 0], cells[:, 1]]).sum()
            exact = (cells.prod(axis=1) * hist[cells[:, 0], cells[:, 1]]).sum()
            assert padded < 1.05 * exact  # (up to _MAX_SHAPES shapes) nearly no padding


def _one_joint(x: float, y: float, s: float, size=(20, 30)) -> torch.Tensor:
    """(1, 17, 1, H, W) heatmaps of a clip whose only visible joint is joint 3 at (x, y) with score s."""
    kp = torch.zeros(1, 1, 1, 17, 2)
    score = torch.zeros(1, 1, 1, 17)
    kp[0, 0, 0, 3] = torch.tensor([x, y])
    score[0, 0, 0, 3] = s
    return R.render_joint_heatmaps(kp, score, size)


def test_heatmap_peaks_at_its_joint():
    vol = _one_joint(12.0, 7.0, 0.7)
    plane = vol[0, 3, 0]
    assert torch.nonzero(plane == plane.max()).tolist() == [[7, 12]]  # (row y, column x)
    assert plane.max().item() == pytest.approx(0.7, abs=1e-7)
    assert vol.sum() == plane.sum()  # nothing in any other channel
    # One pixel away: exp(-1 / (2 * 0.6^2)) * score; outside the truncated 3-sigma window: 0.
    assert plane[7, 13].item() == pytest.approx(0.7 * np.exp(-1 / 0.72), rel=1e-6)
    assert plane[7, 15].item() == 0 and plane[10, 12].item() == 0
    off = _one_joint(12.4, 7.0, 1.0)[0, 3, 0]
    assert torch.nonzero(off == off.max()).tolist() == [[7, 12]]


def test_use_score_scales_and_eps_skips():
    plain = _one_joint(9.5, 5.25, 1.0)
    for s in (0.9, 0.3, 1e-3):
        np.testing.assert_allclose(_one_joint(9.5, 5.25, s).numpy(), (plain * s).numpy(), rtol=1e-6, atol=0)
    assert _one_joint(9.5, 5.25, 9.9e-4).abs().sum() == 0  # below EPS: not drawn
    kp, score = torch.full((1, 1, 1, 17, 2), 5.0), torch.full((1, 1, 1, 17), 0.25)
    np.testing.assert_allclose(
        R.render_joint_heatmaps(kp, score, (10, 10), use_score=False).numpy(),
        (R.render_joint_heatmaps(kp, score, (10, 10)) / 0.25).numpy(),
        rtol=1e-6,
    )


def test_double_interleaves_mirrored_views():
    kp, score = (torch.from_numpy(a) for a in _random_clips(1, n=3, m=2, t=2, size=(16, 24)))
    for fmt, order in (("Heatmap", COCO17.flip_order()), ("Limb", R.limb_flip_order(COCO17))):
        single = R.render(fmt, kp, score, (16, 24))
        double = R.render(fmt, kp, score, (16, 24), double=True)
        assert double.shape == (6, *single.shape[1:])
        pairs = double.view(3, 2, *single.shape[1:])  # (N, 2, C, T, H, W)
        assert torch.equal(pairs[:, 0], single)
        assert torch.equal(pairs[:, 1], single[:, order].flip(-1))  # pyskl: flip W, swap left/right
    gray = R.render("grayscale", kp, score, (16, 24), double=True).view(3, 2, 1, 2, 16, 24)
    assert torch.equal(gray[:, 1], gray[:, 0].flip(-1))
    skel = R.render("Skeleton", kp, score, (16, 24), double=True).view(3, 2, 34 * 2, 2, 1, 1)
    flipped = R.render_skeleton(*R.flip_keypoints(kp, score, 24, COCO17.flip_order()), (16, 24))
    assert torch.equal(skel[:, 0], R.render_skeleton(kp, score, (16, 24)))
    assert torch.equal(skel[:, 1], flipped)


def test_limb_flip_order_is_pyskls_pairing():
    left_limb, right_limb = (0, 2, 4, 5, 6, 10, 11, 12), (1, 3, 7, 8, 9, 13, 14, 15)  # pyskl's defaults
    expected = list(range(17))
    for a, b in zip(left_limb, right_limb, strict=True):
        expected[a], expected[b] = b, a
    assert R.limb_flip_order(COCO17) == expected


def test_flip_keypoints():
    kp = torch.tensor([[[1.5, 2.0], [0.0, 3.0], [9.0, 0.0]]])  # (1, V=3, 2)
    score = torch.tensor([[0.1, 0.2, 0.3]])
    fkp, fscore = R.flip_keypoints(kp, score, 10, [0, 2, 1])
    assert fkp.tolist() == [[[8.5, 2.0], [1.0, 0.0], [0.0, 3.0]]]  # x -> 10 - x, except x == 0
    assert torch.allclose(fscore, torch.tensor([[0.1, 0.3, 0.2]]))
    assert kp[0, 0, 0] == 1.5  # inputs untouched
    back = R.flip_keypoints(fkp, fscore, 10, [0, 2, 1])
    assert torch.equal(back[0], kp) and torch.equal(back[1], score)


def test_grayscale_is_sum_of_joint_channels():
    kp, score = (torch.from_numpy(a) for a in _random_clips(2, n=2, m=2, t=3, size=(20, 20)))
    gray = R.render("Grayscale", kp, score, (20, 20), sigma=0.8)
    joints = R.render("joint", kp, score, (20, 20), sigma=0.8)
    assert gray.shape == (2, 1, 3, 20, 20)
    torch.testing.assert_close(gray, joints.sum(dim=1, keepdim=True), rtol=0, atol=0)


def test_skeleton_channels():
    kp = torch.zeros(2, 2, 3, 17, 2)
    score = torch.zeros(2, 2, 3, 17)
    kp[1, 1, 2, 4] = torch.tensor([30.0, 10.0])  # sample 1, person 1, frame 2, joint 4
    score[1, 1, 2, 4] = 0.5
    kp[0, 0, 0, 0] = torch.tensor([30.0, 10.0])  # score 0: missing
    x = R.render_skeleton(kp, score, (40, 60))  # H = 40, W = 60
    assert x.shape == (2, 68, 3, 1, 1) and x.dtype == torch.float32
    channel = (1 * 17 + 4) * 2  # (M, V, xy) order
    assert x[1, channel, 2, 0, 0].item() == pytest.approx(2 * 30 / 60 - 1)  # 0.0
    assert x[1, channel + 1, 2, 0, 0].item() == pytest.approx(2 * 10 / 40 - 1)  # -0.5
    x[1, channel : channel + 2, 2] = 0
    assert x.abs().sum() == 0  # missing joints (score 0, or at (0, 0)) are 0
    kp[..., 0], kp[..., 1], score[:] = 60.0, 40.0, 1.0
    assert torch.all(R.render_skeleton(kp, score, (40, 60)) == 1)  # frame corner -> (1, 1)


def test_reused_output_buffer_does_not_leak():
    a = [torch.from_numpy(x) for x in _random_clips(3, n=2, m=2, t=2, size=(16, 16))]
    b = [torch.from_numpy(x) for x in _random_clips(4, n=2, m=2, t=2, size=(16, 16))]
    for fmt, c in (("Heatmap", 17), ("Limb", 17)):
        out = torch.full((4, c, 2, 16, 16), 7.0)  # stale values everywhere
        first = R.render(fmt, *a, (16, 16), out=out[:2])
        assert first.data_ptr() == out.data_ptr()
        torch.testing.assert_close(first, R.render(fmt, *a, (16, 16)), rtol=0, atol=0)
        second = R.render(fmt, *b, (16, 16), out=out[:2])
        torch.testing.assert_close(second, R.render(fmt, *b, (16, 16)), rtol=0, atol=0)
        doubled = R.render(fmt, *b, (16, 16), double=True, out=out)
        torch.testing.assert_close(doubled, R.render(fmt, *b, (16, 16), double=True), rtol=0, atol=0)
    with pytest.raises(ValueError, match="out must be"):
        R.render("Heatmap", *a, (16, 16), out=torch.zeros(2, 17, 2, 16, 15))


def test_dispatch_names_and_channels():
    kp, score = torch.zeros(1, 2, 4, 17, 2), torch.zeros(1, 2, 4, 17)
    for name, c in (("HEATMAP", 17), ("ncthw_heatmap", 17), ("Joint", 17), ("limb", 17), ("GrayScale", 1)):
        assert R.render(name, kp, score, (8, 8)).shape == (1, c, 4, 8, 8)
        assert R.input_channels(name, 2) == c
    assert R.render("skeleton", kp, score, (8, 8)).shape == (1, 68, 4, 1, 1)
    assert R.input_channels("Skeleton", 2, COCO17) == 68
    with pytest.raises(ValueError, match="Heatmap.*Limb.*Grayscale.*Skeleton"):
        R.render("rgb", kp, score, (8, 8))
    with pytest.raises(ValueError, match="Skeleton"):
        R.input_channels("bone", 2)


def test_input_dtypes_and_shapes():
    kp, score = (torch.from_numpy(a) for a in _random_clips(5, n=1, m=2, t=2, size=(12, 12)))
    ours = R.render_joint_heatmaps(kp.double(), score.half(), (12, 12))  # cast to float32 inside
    assert ours.dtype == torch.float32 and ours.shape == (1, 17, 2, 12, 12)
    torch.testing.assert_close(ours, R.render_joint_heatmaps(kp, score.half().float(), (12, 12)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="kp must be"):
        R.render_joint_heatmaps(kp[..., :1], score, (12, 12))
    with pytest.raises(ValueError, match="score must be"):
        R.render_joint_heatmaps(kp, score[:, :1], (12, 12))
    with pytest.raises(ValueError, match="joints"):
        R.render("Heatmap", kp[:, :, :, :5], score[:, :, :, :5], (12, 12))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    kp, score = (torch.from_numpy(a) for a in _random_clips(6, n=2, m=2, t=4, size=(56, 56)))
    for fmt in ("Heatmap", "Limb", "Grayscale", "Skeleton"):
        cpu = R.render(fmt, kp, score, (56, 56), double=True)
        gpu = R.render(fmt, kp.cuda(), score.cuda(), (56, 56), double=True)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-6)
