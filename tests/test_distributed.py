"""`replyqa score --engine ray` on a real local Ray cluster agrees row for row with the local engine."""

from __future__ import annotations

import pandas as pd
import pytest
from test_batch import ROWS

from ml.serving.batch import ChunkSettings, ScoreJob

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_agrees_with_the_local_engine_row_for_row(tiny_scorer, tmp_path, local_cluster):
    from ml.serving.distributed import score_on_ray

    archive = tmp_path / "archive"
    (archive / "2026-11").mkdir(parents=True)
    frame = pd.DataFrame([{**row, "id": f"{row['id']}-{i}"} for i in range(5) for row in ROWS])
    frame.iloc[:9].to_csv(archive / "a.csv", index=False)
    frame.iloc[9:17].to_json(archive / "b.jsonl", orient="records", lines=True, force_ascii=False)
    frame.iloc[17:].to_parquet(archive / "2026-11" / "c.parquet", index=False)
    settings = ChunkSettings("text", "context", "id", "utf-8", False)
    out = tmp_path / "scored"
    counts = score_on_ray(tiny_scorer, str(archive), str(out), settings, chunk_rows=4, num_actors=2)
    assert counts == {"files": 3, "resumed_files": 0, "rows": 25, "scored": 15, "errors": 10}
    for name in ("a.csv", "b.jsonl", "2026-11/c.parquet"):
        local = tmp_path / f"local-{name.replace('/', '-')}.parquet"
        ScoreJob(tiny_scorer, str(archive / name), str(local), chunk_rows=4).run(show_progress=False)
        distributed = pd.read_parquet(out / f"{name}.parquet")
        assert distributed["_input_file"].eq(str(archive / name)).all()
        assert distributed["_row"].tolist() == list(range(1, len(distributed) + 1))
        expected = pd.read_parquet(local)
        pd.testing.assert_frame_equal(distributed.drop(columns=["_input_file", "_row"]), expected, check_dtype=False)
    again = score_on_ray(tiny_scorer, str(archive), str(out), settings, chunk_rows=4, num_actors=2)
    assert again["resumed_files"] == 3 and again["rows"] == 0  # complete outputs are skipped
