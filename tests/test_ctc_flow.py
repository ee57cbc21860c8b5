"""A CTC bundle (the tiny Omnilingual-CTC export from tests/tiny_models) through the paths Whisper
bundles take beyond `run`: the Prefect flow on a real Prefect server, and a reviewer's save through the
real review server's API, whose revision chain `verify` accepts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx

from pipeline.archive import catalog
from pipeline.review import accounts

from . import media_factory as mf
from .conftest import review_server
from .test_ctc import RUN_FLAGS, _bundle, _transcript, cli, exports  # noqa: F401 (a fixture)
from .test_flow import _testimony, prefect_server  # noqa: F401 (a fixture)


def _ctc_bundle(exports: dict, media: Path, tmp_path: Path, archive: Path, env: dict | None = None) -> Path:  # noqa: F811
    """A `testimony run` of the Kazakh clip on the imported tiny Omnilingual-CTC model; its bundle."""
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    done = _testimony(["run", str(video), "--out", str(archive), "--language", "kk", "--engine", "ctc",
                       "--asr-model", "tiny-ctc", *RUN_FLAGS], env or dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    return _bundle(archive)


def _without(data: dict, *keys: str) -> dict:
    return {k: v for k, v in data.items() if k not in keys}


def test_the_flow_makes_the_same_ctc_bundle_as_the_cli(exports, prefect_server, media, tmp_path):  # noqa: F811
    cli("models", "import", str(exports["omnilingual-ctc"]), "--name", "tiny-ctc", "--language", "kk")
    record = json.loads((Path(os.environ["TESTIMONY_MODELS"]) / "ctc" / "tiny-ctc.json").read_text(encoding="utf-8"))
    plain = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    by_cli = _transcript(_ctc_bundle(exports, media, tmp_path, tmp_path / "cli", plain))
    env = {**prefect_server["env"], "TESTIMONY_MODELS": os.environ["TESTIMONY_MODELS"]}
    by_flow = _transcript(_ctc_bundle(exports, media, tmp_path, tmp_path / "flow", env))

    api = prefect_server["api"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    ours = [r for r in runs if str(tmp_path / "flow") in json.dumps(r["parameters"])]
    assert [r["state"]["type"] for r in ours] == ["COMPLETED"], "the second run went through the flow"
    assert not [r for r in runs if str(tmp_path / "cli") in json.dumps(r["parameters"])], "the first did not"
    asr = by_flow["models"]["asr"]
    assert (asr["engine"], asr["name"], asr["sha256"]) == ("ctc", "tiny-ctc", record["files"]["model.int8.onnx"])
    assert by_flow["segments"] and by_flow["segments"] == by_cli["segments"]
    assert by_flow["segments"][0]["words"], "word times from the CTC alignment survive the flow"
    assert _without(by_flow, "created", "timings") == _without(by_cli, "created", "timings")


def _sign_in(client: httpx.Client, name: str, password: str) -> None:
    """Signs the client in as a person does on the sign-in page: the page's token, then the cookie."""
    token = re.search(r'name="testimony-token" content="([^"]+)"', client.get("/signin").text).group(1)
    client.headers["X-Testimony-Token"] = token
    signed = client.post("/api/session", json={"name": name, "password": password})
    assert signed.status_code == 200, signed.text


def test_a_reviewer_saves_an_edit_of_a_ctc_bundle_and_the_chain_verifies(exports, media, tmp_path):  # noqa: F811
    cli("models", "import", str(exports["omnilingual-ctc"]), "--name", "tiny-ctc", "--language", "kk")
    archive = tmp_path / "archive"
    bundle = _ctc_bundle(exports, media, tmp_path, archive)
    sha12 = bundle.name[:12]
    catalog.sync(archive)
    accounts.add(archive, "aigerim", "reviewer", ("kk",), "aigerim's own password", must_change=False)
    draft = _transcript(bundle)["segments"]
    with review_server(archive) as url, httpx.Client(base_url=url, timeout=30) as client:
        _sign_in(client, "aigerim", "aigerim's own password")
        opened = client.get(f"/api/bundles/{sha12}").json()
        segments = [dict(s) for s in opened["segments"]]
        segments[0]["text"] = "Менің әкем лагерьде болды"
        saved = client.post(f"/api/bundles/{sha12}/revisions", json={"base": opened["revision"], "segments": segments})
        assert saved.status_code == 201, saved.text
        chain = client.get(f"/api/bundles/{sha12}/revisions").json()["revisions"]
    assert [r["number"] for r in chain] == [0, 1] and chain[-1]["author"] == "aigerim"

    done = cli("verify", sha12, "--out", str(archive))
    assert done.returncode == 0, done.stdout + done.stderr
    after = _transcript(bundle)
    edited = after["segments"][0]
    assert edited["text"] == "Менің әкем лагерьде болды"
    assert edited.get("words") is None, "the CTC word times were of the old text: dropped, as for Whisper"
    assert (edited["start"], edited["end"]) == (draft[0]["start"], draft[0]["end"])
    assert [s.get("words") for s in after["segments"][1:]] == [s["words"] for s in draft[1:]], "the rest keep theirs"
    assert after["models"]["asr"]["engine"] == "ctc"
    assert "Менің әкем лагерьде болды" in (bundle / "kk.srt").read_text(encoding="utf-8")
