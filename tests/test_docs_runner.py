"""`make test-docs` (bench/test_docs.py): the docs' commands are found without a list, marked skips
keep their reasons, synopses are refused, and a command fails on its exit status or a traceback."""

import json
from pathlib import Path

from doc_commands import Command, discover, discover_all, not_literal
from doc_run import CAPS, as_run, run_docs

REPO = Path(__file__).resolve().parents[1]

PAGE = '''# A page
<!-- test-docs: skip "make test" the suite itself -->
Run `make test-docs` or `make test`; `python tools/x.py --flag` is prose too; `tools/y.py` is not.

```bash
python tools/a.py --config c.yaml \\
    key=value   # a comment
# only a comment

make test
```

<!-- test-docs: skip needs 8 GPUs -->
```bash
accelerate launch --multi_gpu tools/b.py
```

```
layout/  not a command
```

1. In a list:
   ```python
   from x import y
   y(images)
   ```
'''


def test_discovery_of_blocks_inline_spans_and_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    found = {(c.line, c.text): c for c in discover(page, "page.md")}
    assert [text for _, text in found] == [
        "make test-docs", "make test", "python tools/x.py --flag",
        "python tools/a.py --config c.yaml key=value", "make test",
        "accelerate launch --multi_gpu tools/b.py", "from x import y\ny(images)\n"]
    skips = {(line, text): c.skip for (line, text), c in found.items()}
    assert skips[(3, "make test-docs")] == ""  # a prefix marks whole words only
    assert skips[(3, "make test")] == skips[(10, "make test")] == "the suite itself"
    assert skips[(15, "accelerate launch --multi_gpu tools/b.py")] == "needs 8 GPUs"
    assert found[(6, "python tools/a.py --config c.yaml key=value")].skip == ""
    assert found[(24, "from x import y\ny(images)\n")].kind == "python"


def test_a_synopsis_is_not_a_command():
    for text in ("tools/evaluate.py --config <run>/config.yaml", "python t.py --config ...",
                 "python t.py [--backend pycocotools]", "python t.py [key=value ...]"):
        assert not_literal(Command("f", 1, "shell", text)), text
    for text in ('python t.py "data.voc_train=[train]"', "python t.py data.classes=[a,b]"):
        assert not_literal(Command("f", 1, "shell", text)) == "", text


def test_every_documented_command_is_literal_or_skipped_with_a_reason():
    commands = discover_all(REPO)
    assert len(commands) > 80
    assert [c.where for c in commands if not c.skip and not_literal(c)] == []
    assert all(c.skip.strip() for c in commands if c.skip)
    ran = {c.text for c in commands if not c.skip}
    assert "python tools/demo.py --smoke" in ran and not any(t.startswith("accelerate launch") for t in ran)


def test_training_commands_are_capped_and_user_paths_substituted():
    command = Command("f", 1, "shell", "python tools/pretrain.py --config c.yaml data.root=/data/imagenet "
                                       "data.holdout=5000")
    ran = as_run(command, [])
    assert "data.root=data/imagenet" in ran and "data.holdout=10" in ran
    assert ran.endswith(" ".join(f"'{c}'" if "[" in c else c for c in CAPS))
    assert as_run(Command("f", 1, "shell", "python tools/predict.py --out /data/x"), []) == \
        "python tools/predict.py --out data/x"  # not a training command: not capped
    snippet = as_run(Command("f", 1, "python", "print(images.shape)\n"), ["from a import b"])
    assert "from a import b" in snippet and "images = torch.randn" in snippet


def test_a_failing_exit_or_a_traceback_fails_and_later_commands_see_earlier_files(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "README.md").write_text('''```bash
python -c "open('made.txt', 'w').write('x')"
python -c "print(open('made.txt').read())"
python -c "raise SystemExit(3)"
python -c "import traceback; traceback.print_stack(); print('Traceback (most recent call last):')"
```

```python
assert images.shape == (2, 3, 224, 224)
```

<!-- test-docs: skip no reason to run it -->
```bash
python -c "raise SystemExit(4)"
```
''')
    outcomes = run_docs(repo, tmp_path / "work", log=lambda *_: None)
    assert [o.status for o in outcomes] == ["ok", "ok", "failed", "failed", "ok", "skipped"]
    assert outcomes[2].reason.startswith("exit 3")
    assert "traceback" in outcomes[3].reason
    assert outcomes[5].reason == "no reason to run it"
    report = json.loads((tmp_path / "work" / "report.json").read_text())
    assert [r["status"] for r in report] == [o.status for o in outcomes]
