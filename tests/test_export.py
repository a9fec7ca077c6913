"""The benchmark for every toolbox (scripts/export_corrupted.py, scripts/score_results.py), end to end on a tiny
synthetic set: the project's own test path on the exported files gives, bit for bit, the probabilities of its
robustness sweep on the original file for every set that the manifest says holds the project's clips (all but
jitter for a volume model, every set for a joint-coordinate model with --dtype source); written as pyskl and
mmaction2 result files and scored, they give the sweep's rows and summary to the last digit. Errors are one line."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.pipeline.clips import SkeletonClips
from datasets.pipeline.corruptions import FAMILIES, parse_corruptions
from datasets.sources.synthetic import make_synthetic
from datasets.store.annotations import load_pickle, pack_annotations
from datasets.store.layouts import COCO17, NTU25
from engine.checkpoint import build_model
from engine.config import EvalConfig, RunConfig, resolve_run_config
from engine.data import eval_loader
from engine.evaluate import predict_probs, robustness_sweep, summarize
from tests.conftest import ROOT, error_line
from utils.logger import RunLogger
from utils.robustness import read_robustness
from utils.runtime import Runtime


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export = load_script("export_corrupted")
score = load_script("score_results")

SPLIT, ALPHAS, NUM_CLASSES = "xsub_val", (0.0, 0.02), 4
RT = Runtime(torch.device("cpu"))
# What each data path of the project reads (models/registry.py's `reads`): a tiny PoseConv3D on the Skeleton
# input (a volume model) and a tiny MotionBERT (joint coordinates), with the export's --dtype that gives it
# the project's clips of a float16 file.
MODELS = {
    "volume": ("poseconv3d", 8, {"base_channels": 4, "stage_blocks": (1, 1, 1)}, "float32"),
    "joints": ("motionbert", 16, {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2, "hidden_dim": 32},
               "source"),
}  # fmt: skip


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory) -> Path:
    """8 test clips of 4 classes, float16 keypoints (as pyskl's files), 20 to 40 frames."""
    data = make_synthetic(num_classes=NUM_CLASSES, clips_per_class_per_subject=2, num_subjects=3, seed=3,
                          min_frames=20, max_frames=40)  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


def tiny_model(reads: str) -> tuple[torch.nn.Module, RunConfig]:
    name, clip_len, kwargs, _ = MODELS[reads]
    cfg = resolve_run_config(name, input_format="Skeleton", layout=COCO17, num_joints=17, coord_dim=2,
                             num_classes=NUM_CLASSES, dropout=0.0, clip_len=clip_len, input_size=32, max_persons=2,
                             model_kwargs=kwargs)  # fmt: skip
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def probe(model: torch.nn.Module, cfg: RunConfig, store, idx: np.ndarray) -> None:
    """Train the model's last linear layer, in place, as a ridge-regression probe of its input features on the
    clips `idx` (test-mode clips, mean over their views): a model in 50 ms whose predictions, unlike a random
    model's single class, vary with the clip, so that top-1 varies from row to row."""
    fc = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    feats: list[torch.Tensor] = []
    hook = fc.register_forward_hook(lambda m, inputs, out: feats.append(inputs[0].detach()))
    _, labels, _ = predict_probs(model, eval_loader(store, idx, cfg, EvalConfig(batch_size=16), RT), cfg, RT, False)
    hook.remove()
    f = torch.cat(feats).double().view(len(labels), -1, fc.in_features).mean(1)  # (N, D)
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sd
    target = 2 * torch.nn.functional.one_hot(torch.from_numpy(labels), NUM_CLASSES).double() - 1  # (N, C)
    w = torch.linalg.solve(z.T @ z + 0.1 * torch.eye(fc.in_features, dtype=torch.float64), z.T @ target)  # (D, C)
    with torch.no_grad():
        fc.weight.copy_((w / sd[:, None]).T)
        fc.bias.copy_(-(mu / sd) @ w)


def exported_probs(model, cfg: RunConfig, ev: EvalConfig, path: Path) -> np.ndarray:
    """(N, C) probabilities of an exported file's test clips by the project's own test path (clean: no corruption
    of its own), in the file's order."""
    store = pack_annotations(load_pickle(path))
    idx = store.split_indices(SPLIT)
    indices, _, probs = predict_probs(model, eval_loader(store, idx, cfg, ev, RT), cfg, RT, ev.test_flip)
    np.testing.assert_array_equal(indices, idx)
    return probs


def write_results(folder: Path, name: str, probs: np.ndarray, labels: np.ndarray, mmaction2: bool) -> None:
    """A result file as pyskl's `--out` (a list of 1D score arrays) or mmaction2 >= 1.0's `--dump` (a list of
    dicts with tensors) writes it."""
    if mmaction2:
        entries = [{"pred_score": torch.from_numpy(p), "gt_label": torch.tensor([y]), "pred_label": torch.tensor([0])}
                   for p, y in zip(probs, labels, strict=True)]  # fmt: skip
    else:
        entries = list(probs)
    (folder / f"{name}.pkl").write_bytes(pickle.dumps(entries))


@pytest.mark.parametrize("reads", ["volume", "joints"])
def test_exported_sets_score_as_the_projects_sweep(tmp_path, ann_file, reads, capsys):
    out, results = tmp_path / "bench", tmp_path / "results"
    results.mkdir()
    manifest = export.main([str(ann_file), str(out), "--eval_alphas", *map(str, ALPHAS), "--dtype", MODELS[reads][3]])
    assert json.loads((out / "manifest.json").read_text()) == manifest

    # The project's own sweep of the original file.
    model, cfg = tiny_model(reads)
    ev = EvalConfig(alphas=ALPHAS, corruptions=tuple(parse_corruptions(["all"])), num_clips=2, batch_size=8)
    store = pack_annotations(load_pickle(ann_file))
    probe(model, cfg, store, store.split_indices("xsub_train"))
    swept: list = []
    rows = robustness_sweep(model, store, store.split_indices(SPLIT), cfg, ev, RT, RunLogger(tmp_path, False), "m",
                            0, swept)  # fmt: skip
    capsys.readouterr()
    sets = manifest["sets"]
    assert [(s["family"], s["severity"], s["suite"]) for s in sets] == [
        (r["family"], r["severity"], r["suite"]) for r in rows
    ]
    labels = np.array([c["label"] for c in manifest["clips"]])
    np.testing.assert_array_equal([c["index"] for c in manifest["clips"]], swept[0][0])  # the source's store indices
    np.testing.assert_array_equal(labels, swept[0][1])

    # The same model on the exported files, written as result files and scored.
    same = []
    for k, s in enumerate(sets):
        probs = exported_probs(model, cfg, ev, out / s["file"])
        write_results(results, s["name"], probs, labels, mmaction2=k % 2 == 1)
        if reads in s["same_clips_as_project"]:
            np.testing.assert_array_equal(probs, swept[k][2], err_msg=s["name"])  # bit for bit
            same.append(k)
        else:  # volume jitter: the toolbox's own sampling of a jittered clip, and flagged so
            assert (reads, s["family"]) == ("volume", "jitter") and "own sampling" in s["note"]
            assert not np.array_equal(probs, swept[k][2])
    report = score.main([str(out / "manifest.json"), str(results)])
    assert "own sampling" in capsys.readouterr().out  # the note under the rows of other clips than a volume model's

    assert len(same) == (len(sets) - 3 if reads == "volume" else len(sets))  # jitter 0.02 (alphas), 0.01, 0.05
    for k in same:
        got, want = report["rows"][k], rows[k]
        assert (got["top1"], got["top5"], got["clips"]) == (want["top1"], want["top5"], want["clips"]), sets[k]["name"]
    assert len({r["top1"] for r in rows}) > 3  # a model that tells clips apart: the rows differ
    got, want = report["summary"], summarize(rows)
    families = [f for f in FAMILIES if f != "jitter" or reads == "joints"]
    assert {f: got["families"][f] for f in families} == {f: want["families"][f] for f in families}
    assert got["clean"] == want["clean"]
    if reads == "joints":  # every row is the project's: the whole summary to the last digit
        assert (got["mCA"], got["relative"]) == (want["mCA"], want["relative"])
    csv = read_robustness(Path(report["out_dir"]) / "robustness.csv")
    assert [r["top1"] for r in csv] == [r["top1"] for r in report["rows"]]
    assert json.loads((results / "summary.json").read_text())["results"]["mCA"] == got["mCA"]


def clips_of(store, idx: np.ndarray, reads: str, corruption: tuple[str, float]) -> list[np.ndarray]:
    """The keypoint arrays of the project's test items (its clips, before the model) under one corruption."""
    prep = {"reads": "volume", "input_size": 32} if reads == "volume" else {"reads": "joints", "joints_prep": "gcn"}
    ds = SkeletonClips(store, idx, train=False, clip_len=8, layout=NTU25, num_clips=2, corruptions=(corruption,),
                       **prep)  # fmt: skip
    return [ds[i]["keypoint"] for i in range(len(ds))]


@pytest.mark.parametrize("dtype", ["float32", "source"])
def test_3d_clips_without_scores_are_the_projects(tmp_path, dtype):
    """A float16 3D file without keypoint_score (NTU's): the exported clips, read back, are the project's test
    items of every data path the manifest names, for every set; the test clips sit after training clips, so
    their store index is not their position in the exported file."""
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"S001C001P00{i % 3 + 1}R001A{i + 1:03d}", "label": i % 3, "total_frames": 24 + i,
             "keypoint": (rng.normal(size=(1 + i % 2, 24 + i, 25, 3)) * 0.3 + [0, 0, 3]).astype(np.float16)}
            for i in range(6)]  # fmt: skip
    names = [a["frame_dir"] for a in anns]
    path = tmp_path / "3d.pkl"
    path.write_bytes(pickle.dumps({"split": {"xsub_train": names[:3], SPLIT: names[:2:-1]}, "annotations": anns}))
    manifest = export.main([str(path), str(tmp_path / "out"), "--eval_alphas", "0", "--dtype", dtype])
    assert manifest["layout"] == "ntu25" and manifest["coord_dim"] == 3
    store = pack_annotations(load_pickle(path))
    idx = store.split_indices(SPLIT)
    np.testing.assert_array_equal([c["index"] for c in manifest["clips"]], [5, 4, 3])
    checked = 0
    for s in manifest["sets"]:
        data = load_pickle(tmp_path / "out" / s["file"])
        assert all("keypoint_score" not in a for a in data["annotations"])
        exported = pack_annotations(data)
        for reads in s["same_clips_as_project"]:
            corruption = ("jitter", 0.0) if s["family"] == "clean" else (s["family"], s["severity"])
            want = clips_of(store, idx, reads, corruption)
            got = clips_of(exported, exported.split_indices(SPLIT), reads, ("jitter", 0.0))
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{s['name']} {reads}")
            checked += 1
    n = len(manifest["sets"])  # clean, then 24 suite rows; jitter only on the joints path, with --dtype source
    assert checked == (2 + (n - 4) if dtype == "float32" else 2 + (n - 1))


def test_manifest_says_what_each_set_is(tmp_path, ann_file):
    manifest = export.main([str(ann_file), str(tmp_path), "--eval_corruptions", "frame_drop:moderate", "swap",
                            "--eval_alphas", "0", "0.001"])  # fmt: skip
    by_name = {s["name"]: s for s in manifest["sets"]}
    assert list(by_name) == ["clean", "jitter_0.001", "frame_drop_0.666667", "swap_0.1", "swap_0.25", "swap_0.5"]
    assert by_name["jitter_0.001"]["suite"] is False and by_name["swap_0.25"]["level"] == "moderate"
    assert by_name["frame_drop_0.666667"]["same_clips_as_project"] == ["volume"]  # float32 of a float16 file
    assert by_name["clean"]["seed_entropy"] is None
    index = manifest["clips"][0]["index"]
    from datasets.pipeline.corruptions import corruption_rng

    for s in manifest["sets"][1:]:  # the documented rule is the generator the project uses
        rule = np.random.default_rng(np.random.SeedSequence([*s["seed_entropy"], index]))
        assert rule.random() == corruption_rng(s["family"], s["severity"], index).random()
    assert manifest["source"]["sha256"] == export.file_sha256(ann_file) and manifest["keypoint_dtype"] == {
        "clean": "float16", "corrupted": "float32"}  # fmt: skip
    data = load_pickle(tmp_path / "frame_drop_0.666667.pkl")
    assert list(data["split"]) == [SPLIT] and data["layout"] == "coco17"
    assert [a["frame_dir"] for a in data["annotations"]] == data["split"][SPLIT]
    assert all(a["total_frames"] == a["keypoint"].shape[1] for a in data["annotations"])


def test_result_entries_of_each_toolbox():
    p = np.array([0.1, 0.7, 0.2], np.float32)
    for entry in (p, list(p), torch.from_numpy(p), {"pred_score": torch.from_numpy(p)}):
        scores, label = score.entry_scores(entry)
        np.testing.assert_array_equal(scores, p)
        assert scores.dtype == np.float32 and label is None
    rc = {"pred_scores": {"item": torch.from_numpy(p)}, "gt_labels": {"item": torch.tensor([2])}}
    assert score.entry_scores(rc)[1] == 2 and score.entry_scores({"pred_score": p, "gt_label": 1})[1] == 1
    with pytest.raises(ValueError, match="pred_score"):
        score.entry_scores({"scores": p})


def test_errors_are_one_line(tmp_path, ann_file, capsys):
    def fails(main, argv: list[str]) -> str:
        with pytest.raises(SystemExit) as excinfo:
            main(argv)
        return error_line(capsys, excinfo)

    out, results = tmp_path / "bench", tmp_path / "results"
    assert "no split 'nope'" in fails(export.main, [str(ann_file), str(out), "--split", "nope"])
    assert "unknown corruption" in fails(export.main, [str(ann_file), str(out), "--eval_corruptions", "fog"])
    msg = fails(export.main, [str(ann_file), str(out), "--eval_alphas", "-1"])
    assert "--eval_alphas: must be a finite number in [0, 10], got -1" in msg
    manifest = export.main([str(ann_file), str(out), "--eval_corruptions", "swap:0.5", "--eval_alphas", "0"])
    n = len(manifest["clips"])
    labels = np.array([c["label"] for c in manifest["clips"]])
    results.mkdir()
    argv = [str(out / "manifest.json"), str(results)]
    write_results(results, "clean", np.eye(NUM_CLASSES, dtype=np.float32)[labels], labels, mmaction2=False)
    assert "'swap_0.5'" in fails(score.main, argv)  # a missing set
    write_results(results, "swap_0.5", np.zeros((n - 1, NUM_CLASSES), np.float32), labels, mmaction2=False)
    assert f"{n - 1} clips" in fails(score.main, argv)
    write_results(results, "swap_0.5", np.zeros((n, NUM_CLASSES + 1), np.float32), labels, mmaction2=False)
    assert f"{NUM_CLASSES} classes" in fails(score.main, argv)
    write_results(results, "swap_0.5", np.zeros((n, NUM_CLASSES), np.float32), labels[::-1], mmaction2=True)
    assert "another order" in fails(score.main, argv)
    (results / "junk.pkl").write_bytes(b"not a pickle")
    assert "named after no exported set" in fails(score.main, [argv[0], str(results / "junk.pkl")])
    assert "manifest.json" in fails(score.main, [str(tmp_path / "nowhere.json"), str(results)])
    write_results(results, "swap_0.5", np.eye(NUM_CLASSES, dtype=np.float32)[labels], labels, mmaction2=True)
    report = score.main([*argv, "--name", "perfect"])
    assert report["summary"]["clean"] == 1.0 and report["summary"]["mCA"] == 1.0
