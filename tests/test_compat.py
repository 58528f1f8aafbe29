"""The torchvision workaround applies only when the import fails in exactly the known way."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = None
    if pythonpath:
        import os

        env = {**os.environ, "PYTHONPATH": pythonpath + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_timm_and_open_clip_import_and_run():
    result = run_python(
        """
        from rsseg_cli.compat import import_torchvision
        import_torchvision()
        import timm, open_clip, torch
        m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, depth=1, embed_dim=48, num_heads=3,
                              img_size=28)
        assert m(torch.zeros(1, 3, 28, 28)).shape == (1, 48)
        assert open_clip.get_tokenizer("ViT-B-16")(["a photo of a lake"]).shape == (1, 77)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _fake_torchvision(tmp_path, body: str) -> str:
    pkg = tmp_path / "torchvision"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return str(tmp_path)


def test_other_import_errors_are_not_hidden(tmp_path):
    path = _fake_torchvision(tmp_path, 'raise RuntimeError("something else broke")\n')
    result = run_python("from rsseg_cli.compat import import_torchvision; import_torchvision()", path)
    assert result.returncode != 0
    assert "something else broke" in result.stderr


def test_working_torchvision_is_untouched(tmp_path):
    path = _fake_torchvision(tmp_path, "MARK = 'fine'\n")
    result = run_python(
        """
        import rsseg_cli.compat as compat
        tv = compat.import_torchvision()
        assert tv.MARK == "fine" and compat._library is None
        print("untouched")
        """,
        path,
    )
    assert result.returncode == 0, result.stderr
    assert "untouched" in result.stdout
