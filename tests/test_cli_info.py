"""`enformer info`, global options and --version, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from enformer import Enformer, EnformerConfig, __version__
from enformer.cli.main import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_official_preset_json(capsys):
    code, out, _ = run_cli(capsys, "info", "--json")
    assert code == 0
    s = json.loads(out)
    assert s["ok"] and s["command"] == "info"
    assert s["parameters"]["total"] == 251_221_292
    assert s["parameters"]["trunk"] == 229_845_504
    assert s["heads"] == {"human": 5313, "mouse": 1643}
    g = s["geometry"]
    assert (g["input_bp"], g["output_bins"], g["first_output_base"]) == (196_608, 896, 40_960)
    assert not any(k.startswith("_") for k in s)  # no private keys leak into JSON


def test_info_text_and_global_flags_anywhere(capsys):
    code, out, _ = run_cli(capsys, "-q", "info", "--preset", "tiny", "-v")
    assert code == 0
    assert "parameters   71,344" in out
    assert "human (10 tracks)" in out


def test_info_search_tracks(shared_data, capsys):
    code, out, _ = run_cli(
        capsys,
        "info",
        "--json",
        "--targets",
        str(shared_data / "targets"),
        "--search",
        "K562",
        "--limit",
        "3",
    )
    assert code == 0
    s = json.loads(out)
    human = s["tracks"]["human"]
    assert human["matches"] == 485 and human["assays"]["CAGE"] == 638
    assert [t["index"] for t in human["tracks"]] == [33, 34, 35]
    assert human["tracks"][0]["identifier"] == "ENCFF899YDP"
    assert s["tracks"]["mouse"]["matches"] == 0


def test_info_selection_by_identifier(shared_data, capsys):
    code, out, _ = run_cli(
        capsys,
        "info",
        "--json",
        "--head",
        "human",
        "--targets",
        str(shared_data / "targets"),
        "--tracks",
        "ENCFF833POA,CNhs11250",
    )
    assert code == 0
    tracks = json.loads(out)["tracks"]["human"]["tracks"]
    assert [(t["index"], t["assay"]) for t in tracks] == [(0, "DNASE"), (4828, "CAGE")]


def test_info_unknown_track_is_one_line_error(shared_data, capsys):
    code, out, err = run_cli(
        capsys, "info", "--targets", str(shared_data / "targets"), "--tracks", "ENCFF833POX"
    )
    assert code == 2
    assert err.startswith("enformer info: error:") and "did you mean ENCFF833POA" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_info_with_weights_dir(tmp_path, capsys):
    model = Enformer(EnformerConfig.tiny(description="test model"))
    model.save_pretrained(tmp_path / "w")
    code, out, _ = run_cli(capsys, "info", "--json", "--weights", str(tmp_path / "w"))
    assert code == 0
    s = json.loads(out)
    assert s["parameters"]["total"] == model.num_parameters()
    assert s["description"] == "test model"


def test_info_missing_weights(tmp_path, capsys):
    code, _, err = run_cli(capsys, "info", "--weights", str(tmp_path / "nope"))
    assert code == 2 and "no such file" in err


def test_version_and_installed_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "enformer", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"enformer {__version__}"
    bad = subprocess.run([sys.executable, "-m", "enformer"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


@pytest.mark.parametrize("argv", [["info", "--preset", "huge"], ["nosuchcommand"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
