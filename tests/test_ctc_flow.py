"""A CTC bundle (the tiny Omnilingual-CTC export from tests/tiny_models) through the paths Whisper
bundles take beyond `run`: the Prefect flow on a real Prefect server, a reviewer's save through the
real review server's API, whose revision chain `verify` accepts, and the glossary's English spelling
kept by the flow's translate task (tiny MADLAD)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx

from pipeline.archive import catalog
from pipeline.review import accounts
from pipeline.store import routes

from . import media_factory as mf
from .conftest import review_server
from .test_ctc import RUN_FLAGS, _bundle, _transcript, cli, exports  # noqa: F401 (a fixture)
from .test_flow import _task_states, _testimony, prefect_server  # noqa: F401 (a fixture)
from .test_madlad import _import, madlad  # noqa: F401 (a fixture)


def _ctc_bundle(exports: dict, media: Path, tmp_path: Path, archive: Path, env: dict | None = None,  # noqa: F811
                flags: tuple[str, ...] = tuple(RUN_FLAGS)) -> Path:
    """A `testimony run` of the Kazakh clip on the imported tiny Omnilingual-CTC model; its bundle."""
    video = mf.video_from_audio(media / "kk.wav", tmp_path / "witness.mp4", lead_silence=1.0)
    done = _testimony(["run", str(video), "--out", str(archive), "--language", "kk", "--engine", "ctc",
                       "--asr-model", "tiny-ctc", *flags], env or dict(os.environ))
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


def _save_first_text(archive: Path, sha12: str, text: str) -> None:
    """A kk reviewer signs in on the real review server and saves `text` as the first segment's."""
    catalog.sync(archive)
    if accounts.get(archive, "aigerim") is None:
        accounts.add(archive, "aigerim", "reviewer", ("kk",), "aigerim's own password", must_change=False)
    with review_server(archive) as url, httpx.Client(base_url=url, timeout=30) as client:
        _sign_in(client, "aigerim", "aigerim's own password")
        opened = client.get(f"/api/bundles/{sha12}").json()
        segments = [dict(s) for s in opened["segments"]]
        segments[0]["text"] = text
        saved = client.post(f"/api/bundles/{sha12}/revisions", json={"base": opened["revision"], "segments": segments})
        assert saved.status_code == 201, saved.text


def test_a_reviewer_saves_an_edit_of_a_ctc_bundle_and_the_chain_verifies(exports, media, tmp_path):  # noqa: F811
    cli("models", "import", str(exports["omnilingual-ctc"]), "--name", "tiny-ctc", "--language", "kk")
    archive = tmp_path / "archive"
    bundle = _ctc_bundle(exports, media, tmp_path, archive)
    sha12 = bundle.name[:12]
    draft = _transcript(bundle)["segments"]
    _save_first_text(archive, sha12, "Менің әкем лагерьде болды")
    history = cli("history", sha12, "--out", str(archive)).stdout.splitlines()
    assert len(history) == 2 and "aigerim" in history[1], history

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


def _saying_the_name(export: Path, folder: Path) -> Path:
    """The tiny export with one frequent letter's token spelled `▁тұрсын`: the same random weights, heard
    now and then as the name (lower case, as CTC models write), so a run's own text says it."""
    folder.mkdir()
    for item in export.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    tokens = (folder / "tokens.txt").read_text(encoding="utf-8")
    assert "\nю " in tokens
    (folder / "tokens.txt").write_text(tokens.replace("\nю ", "\n▁тұрсын "), encoding="utf-8")
    return folder


def test_the_flows_translate_task_keeps_the_glossary_spelling(exports, madlad, prefect_server, media,  # noqa: F811
                                                              tmp_path):
    """A run through the flow with a glossary English spelling: every segment that says the name has the
    spelling in its machine English (tiny MADLAD, steered), the others never do, and the transcript says how."""
    cli("models", "import", str(_saying_the_name(exports["omnilingual-ctc"], tmp_path / "says-tursun")), "--name",
        "tiny-ctc", "--language", "kk")
    _import(madlad)
    routes.set_route("kk", translate="madlad-tiny")
    words = tmp_path / "glossary.txt"
    words.write_text("Тұрсын = Tursun\n", encoding="utf-8")
    env = {**prefect_server["env"], "TESTIMONY_MODELS": os.environ["TESTIMONY_MODELS"]}
    archive = tmp_path / "archive"
    bundle = _ctc_bundle(exports, media, tmp_path, archive, env, ("--no-diarize", "--glossary", str(words)))
    data = _transcript(bundle)
    assert data["glossary"]["english"] == {"Тұрсын": "Tursun"}
    assert data["models"]["translation"]["packages"][0]["name"] == "translate-kk_en-madlad_tiny"
    saying = [s for s in data["segments"] if "тұрсын" in s["text"]]
    assert saying, [s["text"] for s in data["segments"]]
    for seg in data["segments"]:
        if seg in saying:
            assert "Tursun" in seg["translation"], seg
            assert seg["spellings"] == [{"glossary": "Тұрсын", "english": "Tursun", "how": "steered"}]
        else:
            assert "Tursun" not in (seg["translation"] or "") and not seg.get("spellings"), seg

    api = prefect_server["api"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    ours = [r for r in runs if str(archive) in json.dumps(r["parameters"])]
    assert [r["state"]["type"] for r in ours] == ["COMPLETED"]
    assert _task_states(api, ours[0]["id"]).get("translate") == "Completed"
    assert cli("verify", bundle.name[:12], "--out", str(archive)).returncode == 0
