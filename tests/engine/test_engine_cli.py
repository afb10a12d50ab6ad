"""``padm derain`` / ``padm eval`` / ``padm train`` from the command line: outputs and clear errors.

Every bad input gives one ``Error: ...`` line, a non-zero exit code, no traceback and no output file.
"""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from padm.cli import main
from padm.data.images import read_image, write_image
from padm.engine import checkpoint as ck

from engine_helpers import write_pairs


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_derain_folder_file_16bit_and_stages(ckpt, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    write_image(src / "a.png", rng.integers(0, 255, (19, 23, 3), dtype=np.uint8))
    write_image(src / "b16.png", rng.integers(0, 65535, (8, 5, 3), dtype=np.uint16))
    write_image(src / "c.jpg", rng.integers(0, 255, (30, 17, 3), dtype=np.uint8))
    (src / "notes.txt").write_text("not an image")
    code, out = run("derain", src, tmp_path / "out", "--ckpt", ckpt, "--quiet")
    assert code == 0, out
    assert _files(tmp_path / "out") == ["a.png", "b16.png", "c.jpg"]
    b16 = read_image(tmp_path / "out" / "b16.png")
    assert b16.bit_depth == 16 and b16.pixels.shape == (8, 5, 3)
    assert read_image(tmp_path / "out" / "c.jpg").pixels.shape == (30, 17, 3)
    # single file, tiled, with every stage saved
    code, out = run("derain", src / "a.png", tmp_path / "one.png", "--ckpt", ckpt, "--tile", "8", "--overlap", "4",
                    "--stages", "--quiet")
    assert code == 0, out
    stages = tmp_path / "one_stages"
    assert {"B_0.png", "B_2.png", "R_2.png", "eta_B_0.png", "eta_z_2.png", "stages.npz"} <= set(_files(stages))
    npz = np.load(stages / "stages.npz")
    assert npz["eta_z_0"].shape == (8, 19, 23)
    # re-running refuses to overwrite unless asked
    code, out = run("derain", src / "a.png", tmp_path / "one.png", "--ckpt", ckpt)
    assert code != 0 and "--overwrite" in out
    assert run("derain", src / "a.png", tmp_path / "one.png", "--ckpt", ckpt, "--overwrite", "--quiet")[0] == 0


def _assert_clean_error(code, out, needle):
    assert code != 0
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out
    assert needle in out, out


def test_derain_bad_inputs(ckpt, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "ok.png", np.zeros((9, 9, 3), np.uint8))
    out = tmp_path / "out"
    # missing / corrupt checkpoint, checkpoint of another preset
    _assert_clean_error(*run("derain", src, out, "--ckpt", tmp_path / "missing.pt"), "checkpoint not found")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    _assert_clean_error(*run("derain", src, out, "--ckpt", tmp_path / "junk.pt"), "not a readable checkpoint")
    good = ck.read_checkpoint(ckpt)
    (tmp_path / "trunc.pt").write_bytes(ckpt.read_bytes()[:200])
    _assert_clean_error(*run("derain", src, out, "--ckpt", tmp_path / "trunc.pt"), "not a readable checkpoint")
    _assert_clean_error(*run("derain", src, out, "--ckpt", ckpt, "--preset", "small"),
                        "another model configuration (n_feat 8 != 16")
    bad_state = dict(good, model={k: v[..., :1] for k, v in good["model"].items()})
    ck.atomic_save(bad_state, tmp_path / "badshape.pt")
    _assert_clean_error(*run("derain", src, out, "--ckpt", tmp_path / "badshape.pt"), "weights do not fit")
    # unreadable image among good ones: nothing is written
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _assert_clean_error(*run("derain", src, out, "--ckpt", ckpt), "broken.png")
    assert not out.exists()
    (src / "broken.png").unlink()
    # empty folder, output inside input, output onto the input, unknown suffix, missing input
    (tmp_path / "empty").mkdir()
    _assert_clean_error(*run("derain", tmp_path / "empty", out, "--ckpt", ckpt), "no images found")
    _assert_clean_error(*run("derain", src, src / "derained", "--ckpt", ckpt), "inside the input folder")
    _assert_clean_error(*run("derain", src / "ok.png", src / "ok.png", "--ckpt", ckpt), "replace the input")
    _assert_clean_error(*run("derain", src / "ok.png", tmp_path / "x.gif", "--ckpt", ckpt), "unknown image suffix")
    _assert_clean_error(*run("derain", tmp_path / "nope", out, "--ckpt", ckpt), "input not found")
    assert not out.exists() and not (src / "derained").exists()
    # no --ckpt and no shipped default model
    monkeypatch.setattr(ck, "default_checkpoint_path", lambda: tmp_path / "checkpoints" / "default.pt")
    _assert_clean_error(*run("derain", src, out), "no default model")
    # ... and with one, it is used
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "default.pt").write_bytes(ckpt.read_bytes())
    assert run("derain", src, out, "--quiet")[0] == 0 and (out / "ok.png").is_file()


def test_eval_predictions_and_checkpoint(ckpt, tmp_path):
    data = write_pairs(tmp_path / "data", n=3, size=(23, 31))
    csv = tmp_path / "scores.csv"
    code, out = run("eval", data / "rain", data / "norain", "--csv", csv, "--json", tmp_path / "s.json", "--quiet")
    assert code == 0, out
    assert "3 images, protocol uint8Y: PSNR" in out
    rows = csv.read_text().splitlines()
    assert rows[0] == "name,psnr,ssim,height,width" and rows[-1].startswith("mean,") and len(rows) == 5
    code, out2 = run("eval", data / "rain", data / "norain", "--protocol", "doubleY", "--quiet")
    assert code == 0 and "doubleY" in out2
    code, out3 = run("eval", data, "--ckpt", ckpt, "--save", tmp_path / "pred", "--quiet")
    assert code == 0, out3
    assert len(list((tmp_path / "pred").glob("*.png"))) == 3
    # the saved predictions score the same as the in-memory evaluation
    code, out4 = run("eval", tmp_path / "pred", data / "norain", "--quiet")
    assert out4.split("PSNR")[1] == out3.split("PSNR")[1]


def test_eval_errors(ckpt, tmp_path):
    data = write_pairs(tmp_path / "data", n=2)
    _assert_clean_error(*run("eval", data / "rain"), "give PRED GT")
    _assert_clean_error(*run("eval", data / "rain", data / "norain", "--ckpt", ckpt), "not PRED GT")
    _assert_clean_error(*run("eval", data / "rain", tmp_path / "nope"), "not found")
    _assert_clean_error(*run("eval", data / "rain", data / "norain", "--fid"), "--inception-weights")
    _assert_clean_error(*run("eval", data, "--ckpt", tmp_path / "missing.pt"), "checkpoint not found")


def test_train_cli_errors(standin, tmp_path):
    _assert_clean_error(*run("train", "--iterations", "2"), "no training data")
    _assert_clean_error(*run("train", "--config", tmp_path / "x.yaml"), "config file not found")
    _assert_clean_error(*run("train", "--resume", tmp_path / "nothing"), "not found")
    (tmp_path / "c.yaml").write_text("bogus: 1\n")
    _assert_clean_error(*run("train", "--config", tmp_path / "c.yaml"), "unknown training option(s) bogus")
    _assert_clean_error(*run("train", "--synth-data", tmp_path), "synth_data and synth_model go together")
    code, out = run("train", "--synth-data", tmp_path / "none", "--synth-model", "light", "--out-dir", tmp_path / "r")
    assert code == 1 and "Traceback" not in out and out.splitlines()[-1].startswith("Error: data not found")
    assert not (tmp_path / "r").exists()


def test_shipped_model_choice(ckpt, tmp_path, monkeypatch):
    """``--model NAME`` picks a file of checkpoints/; with --ckpt, or when the file is absent: one line."""
    import padm.engine.checkpoint as ck

    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", np.full((19, 23, 3), 90, np.uint8))
    out = tmp_path / "out"
    _assert_clean_error(*run("derain", src, out, "--model", "heavy", "--ckpt", ckpt), "give --ckpt or --model, not both")
    monkeypatch.setattr(ck, "SHIPPED_MODELS", {"light": "default.pt", "heavy": "absent-in-this-checkout.pt"})
    _assert_clean_error(*run("derain", src, out, "--model", "heavy"), "the heavy model is not in this checkout")
    _assert_clean_error(*run("demo", "--model", "heavy", "--out", tmp_path / "demo"), "not in this checkout")
    from padm.engine.demo import shipped_models

    assert list(shipped_models()) == ["light"]  # the demo runs the shipped models this checkout holds
    monkeypatch.setattr(ck, "SHIPPED_MODELS", {"light": "absent.pt"})
    _assert_clean_error(*run("demo", "--out", tmp_path / "demo"), "no shipped model in this checkout")
    monkeypatch.setattr(ck, "SHIPPED_MODELS", {"light": "default.pt", "heavy": "absent-in-this-checkout.pt"})
    assert not out.exists() and not (tmp_path / "demo").exists()
    # a shipped name that exists is the same as --ckpt with its path
    monkeypatch.setattr(ck, "shipped_checkpoint_path", lambda name: ckpt)
    assert run("derain", src, out, "--model", "heavy", "--quiet")[0] == 0
    assert (out / "a.png").is_file()


def test_the_model_choices_are_the_shipped_models():
    from padm.engine.checkpoint import SHIPPED_MODELS
    from padm.engine.cli import restore
    from padm.engine.demo import demo

    for command in (restore, demo):
        option = next(p for p in command.params if p.name == "shipped")
        assert list(option.type.choices) == list(SHIPPED_MODELS)
