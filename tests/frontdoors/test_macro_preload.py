"""``deepij macro`` loads the models a macro names in literal ``run("DeepImageJ Run", ...)`` calls while
ImageJ starts (deepij.frontdoors.macro_preload). Seen in a fresh process (the only kind that starts ImageJ):
a call the macro never reaches still had its model loaded, into the cache the command uses; a model that
is not found is left to the call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from deepij.frontdoors.macro_preload import literal_run_options

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "nuclei_bundle"
NAME = "deepij demo nuclei U-Net"


def test_only_literal_calls_are_read():
    code = textwrap.dedent(
        f"""
        run("DeepImageJ Run", "model=[{NAME}] format=Pytorch preprocessing=[per_sample_scale_range.ijm]");
          // run("DeepImageJ Run", "model=[commented out]");
        run( "DeepImageJ Run" , "model=[{NAME}] format=Pytorch preprocessing=[per_sample_scale_range.ijm]" );
        run("DeepImageJ Run", "model=[" + name + "]");
        run("DeepImageJ Run", "model_path=http://example.org/b.zip");
        """
    )
    assert literal_run_options(code) == [
        f"model=[{NAME}] format=Pytorch preprocessing=[per_sample_scale_range.ijm]",
        "model_path=http://example.org/b.zip",
    ]


def test_models_named_by_the_macro_are_loaded_while_imagej_starts(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(DEMO, models / "demo")
    macro = tmp_path / "workflow.ijm"
    macro.write_text(
        "if (false) {\n"  # never reached: only the preloading can have loaded its model
        f'    run("DeepImageJ Run", "model=[{NAME}] format=Pytorch");\n'
        '    run("DeepImageJ Run", "model=[no such model] format=Pytorch");\n'
        "}\n"
        'print("ran");\n'
    )
    code = f"""
        from deepij.frontdoors.deepimagej_run import install
        from deepij.frontdoors.workflow import run_workflow
        from deepij.imagej.runtime import current_session
        report = run_workflow({str(macro)!r}, models_dir={str(models)!r})
        print(report.exit_code)
        cache = install(current_session()).models
        print(len(cache), [(m.name, sorted(k[0] for k in m._backends)) for m in cache._models.values()])
        """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), DEEPIJ_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # its network loaded as the call will ask for it (format=Pytorch: the torchscript weights)
    assert done.stdout.splitlines()[-2:] == ["0", f"1 [('{NAME}', ['torchscript'])]"]
