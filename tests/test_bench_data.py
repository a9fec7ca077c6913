"""bench/make_ntu_scale.py and bench/data.py end to end at a tiny size, and the heap release they led to."""

import os
import pickle

import numpy as np

from bench import data as bench_data
from bench.make_ntu_scale import NTU60_CLIPS, XSUB_TRAIN, clip_names
from bench.make_ntu_scale import main as make_main
from datasets.store.annotations import pack_annotations, release_freed_memory


def test_generated_file_has_ntu60s_format_and_is_seeded(tmp_path):
    a, b = tmp_path / "a.pkl", tmp_path / "b.pkl"
    make_main(["--clips", "600", "--out", str(a), "--seed", "3"])
    make_main(["--clips", "600", "--out", str(b), "--seed", "3"])
    assert a.read_bytes() == b.read_bytes()
    data = pickle.loads(a.read_bytes())
    anns = data["annotations"]
    assert len(anns) == 600 and sorted({x["label"] for x in anns}) == list(range(60))
    for x in anns:
        m, t, v, c = x["keypoint"].shape
        assert x["keypoint"].dtype == np.float16 and x["keypoint_score"].shape == (m, t, v)
        assert m in (1, 2) and 30 <= t <= 300 and (v, c) == (17, 2) and x["total_frames"] == t
        assert (m == 2) or not 49 <= x["label"] <= 59  # the mutual actions A050-A060 have two persons
        assert x["img_shape"] == (1080, 1920)
    performer = {x["frame_dir"]: int(x["frame_dir"][9:12]) for x in anns}
    assert all(performer[n] in XSUB_TRAIN for n in data["split"]["xsub_train"])
    assert all(performer[n] not in XSUB_TRAIN for n in data["split"]["xsub_val"])
    store = pack_annotations(data, num_classes=60)  # the project's validation accepts it
    assert len(store) == 600 and len(store.split_indices("xsub_train")) > 0 and len(store.split_indices("xsub_val")) > 0


def test_generator_names_are_unique_and_split_like_ntu60_at_full_size():
    names, _, performer, _ = clip_names(NTU60_CLIPS)
    assert len(set(names)) == NTU60_CLIPS
    assert abs(np.isin(performer, XSUB_TRAIN).sum() - 40_320) < 600  # NTU60's xsub_train has 40,320 clips


def test_bench_data_runs_end_to_end(tmp_path, capsys):
    path = tmp_path / "tiny.pkl"
    make_main(["--clips", "600", "--out", str(path)])
    out = bench_data.main(["--ann_file", str(path), "-j", "0", "--batches", "2", "-b", "4", "--items", "8",
                           "--render_batches", "1", "--clip_len", "8", "--input_size", "16"])  # fmt: skip
    text = capsys.readouterr().out
    for line in ("load: 600 clips", "memory -j 0: PSS", "one worker:", "render:"):
        assert line in text, text
    assert out["passes"][0]["pss"] > 0 and out["passes"][0]["batches"] == 2
    assert out["worker"] > 0 and out["worker_cpu"] > 0 and out["render"] > 0


def test_tree_pss_counts_this_process():
    total, own, _ = bench_data.tree_pss(os.getpid())
    assert total >= own > 10_000  # KiB: a Python process with numpy and torch holds well over 10 MB


def test_release_freed_memory_returns_the_heap_of_small_freed_arrays():
    if not release_freed_memory():
        return  # not glibc: nothing to release, nothing to check
    before = bench_data.pss_kib(os.getpid())
    # Many small arrays with live objects between them: the heap cannot shrink by itself once they are freed.
    arrays, names = [], []
    for i in range(20_000):
        arrays.append(np.ones(5000, np.uint8))
        names.append(f"clip{i:06d}" * 2)
    grown = bench_data.pss_kib(os.getpid()) - before
    del arrays
    release_freed_memory()
    kept = bench_data.pss_kib(os.getpid()) - before
    assert grown > 50_000 and kept < 0.2 * grown, (grown, kept)
