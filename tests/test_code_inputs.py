"""Code inputs derived from imports (latentedit.code_inputs): every rule that runs a script lists every library file
the script reaches, and the library's packages import each other without a cycle."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from latentedit.code_inputs import (find_cycle, imported_modules, library_files, package_graph, reached_modules)
from latentedit.edits.methods import METHODS

REPO = Path(__file__).resolve().parents[1]


def _rule_scripts() -> dict[str, str]:
    """{rule: script file name} for every rule of rules/*.smk that runs a script."""
    out = {}
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"(?m)^(?=[ ]*rule \w+:)", path.read_text()):  # rules inside an if/else too
            rule = re.match(r"\s*rule (\w+):", block)
            script = re.search(r'script:\n\s+"\.\./workflow_scripts/(\w+\.py)"', block)
            if rule and script:
                out[rule.group(1)] = script.group(1)
    return out


def _dry_run_jobs(work: Path, *args: str) -> list[dict]:
    """Every job of a forced dry run: {"rule", "input" (set of paths), "wildcards" (dict)}."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), "-n",
           "--forceall", "--cores", "1", *args]
    proc = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = []
    for block in re.split(r"(?m)^(?=rule \w+:)", proc.stdout)[1:]:
        rule = re.match(r"rule (\w+):", block).group(1)
        inputs = re.search(r"(?m)^    input: (.*)$", block)
        wildcards = re.search(r"(?m)^    wildcards: (.*)$", block)
        jobs.append({"rule": rule, "input": set(inputs.group(1).split(", ")) if inputs else set(),
                     "wildcards": dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")) if wildcards
                     else {}})
    return jobs


def _check_jobs(jobs: list[dict]) -> set[str]:
    scripts = _rule_scripts()
    seen = set()
    for job in jobs:
        if job["rule"] not in scripts:
            continue
        seen.add(job["rule"])
        modules = [METHODS[job["wildcards"]["method"]].trainer] if job["rule"] == "train_edit" else []
        needed = set(library_files([REPO / "workflow_scripts" / scripts[job["rule"]]], modules))
        missing = sorted(needed - job["input"])
        assert not missing, f"rule {job['rule']} {job['wildcards']}: code inputs miss {missing}"
    return seen


def test_every_digits_rule_lists_every_library_file_its_script_reaches(tiny_config, tmp_path, write_config):
    tiny_config["edits"]["methods"] = list(METHODS)  # every method, the W* stage included
    write_config(tiny_config)
    seen = _check_jobs(_dry_run_jobs(tmp_path, "all", "dlsgan_ablation"))
    tiny_config["oracle"]["retrain"] = False  # the shipped oracle's rule instead of train_oracle
    write_config(tiny_config)
    seen |= _check_jobs(_dry_run_jobs(tmp_path, "results/digits/oracle/metrics.json"))
    digits_rules = {"digits_images", "train_oracle", "shipped_oracle", "train_dlsgan", "dlsgan_quality",
                    "dlsgan_ablation",
                    "refine_encoder", "project", "train_latent_classifiers", "train_wstar", "wstar_metrics",
                    "train_edit", "edit_curves", "edits_latent_summary", "evaluate_edit", "edit_grid",
                    "aggregate_metrics",
                    "metrics_figures"}
    assert seen == digits_rules


def test_every_faces_rule_lists_every_library_file_its_script_reaches(tmp_path):
    seen = _check_jobs(_dry_run_jobs(tmp_path, "--configfile", str(REPO / "configs" / "faces.yaml"),
                                     "--replace-workflow-config"))
    assert {"celebahq_images", "faces_eval_images", "train_attribute_classifier", "project_faces"} <= seen


def test_every_rule_that_runs_a_script_times_itself():
    """Each script rule declares the job's own timing record as output ``timing`` (latentedit.jobs: Snakemake's
    ``benchmark:`` sampling cost ≈ 21 s of Snakemake's CPU in a default run), and each script hands it to
    ``setup_job``."""
    scripts = set()
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"(?m)^(?=[ ]*rule \w+:)", path.read_text()):
            if "script:" in block:
                head = block.splitlines()[0]
                assert re.search(r'^\s+timing="benchmarks/[^"]+\.tsv",$', block, re.M), head
                assert "benchmark:" not in block, head
                scripts.add(re.search(r'script:\s+"([^"]+)"', block).group(1).split("/")[-1])
    assert len(scripts) > 15
    for name in scripts:
        assert "timing=snakemake.output.timing)" in (REPO / "workflow_scripts" / name).read_text(), name


def test_train_edit_jobs_depend_on_their_own_trainer_only():
    script = REPO / "workflow_scripts" / "train_edit.py"
    files = {m: set(library_files([script], [METHODS[m].trainer])) for m in METHODS}
    lib = REPO / "latentedit" / "edits"
    assert str(lib / "lt.py") in files["lt"] and str(lib / "lt.py") not in files["lw"] | files["ifg"]
    assert str(lib / "sinkhorn.py") in files["lw_wstar"] and str(lib / "sinkhorn.py") not in files["ifg_wstar"]
    assert str(lib / "interfacegan.py") not in files["lw"]


def test_the_library_packages_form_no_import_cycle():
    assert find_cycle(package_graph()) is None


def test_rendering_and_evaluation_never_import_a_trainer():
    trainers = {m.trainer for m in METHODS.values()} | {"latentedit.edits.train"}
    for script in ("evaluate_edit.py", "summarize_edits.py", "aggregate_metrics.py"):
        reached = set(reached_modules([REPO / "workflow_scripts" / script]))
        assert not reached & trainers, (script, sorted(reached & trainers))
    # The Sinkhorn solver is also a metric (the edited codes' divergence to the target codes, measured where the
    # codes are edited): the evaluation reads it, the summaries do not.
    sinkhorn = "latentedit.edits.sinkhorn"
    assert sinkhorn in reached_modules([REPO / "workflow_scripts" / "evaluate_edit.py"])
    for script in ("summarize_edits.py", "aggregate_metrics.py"):
        assert sinkhorn not in reached_modules([REPO / "workflow_scripts" / script]), script


# ---------------------------------------------------------------------------------------------------------------
# The import walker itself, on a made-up package


@pytest.fixture
def toy_library(tmp_path) -> Path:
    root = tmp_path / "latentedit"
    files = {
        "__init__.py": "",
        "a/__init__.py": "from latentedit.a.inner import helper\n",
        "a/inner.py": "import numpy\n",
        "a/lazy.py": "def f():\n    from latentedit.b import tool  # a function-level import counts too\n",
        "b/__init__.py": "",
        "b/tool.py": "from latentedit import c\n",
        "c.py": "X = 1\n",
        "d/__init__.py": "",
        "d/rel.py": "from . import other\nfrom ..c import X\n",
        "d/other.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_reach_follows_function_level_imports_and_package_inits(toy_library):
    assert reached_modules(modules=["latentedit.a.lazy"], root=toy_library) == [
        "latentedit", "latentedit.a", "latentedit.a.inner", "latentedit.a.lazy", "latentedit.b", "latentedit.b.tool",
        "latentedit.c"]


def test_from_package_import_module_and_relative_imports_resolve(toy_library):
    assert imported_modules(toy_library / "b" / "tool.py", toy_library) == {"latentedit.c"}
    assert imported_modules(toy_library / "d" / "rel.py", toy_library) == {"latentedit.d.other", "latentedit.c"}


def test_an_edited_file_is_read_again(toy_library):
    path = toy_library / "c.py"
    assert imported_modules(path, toy_library) == set()
    path.write_text("from latentedit.b import tool\n# longer than before\n")  # the parse cache keys on size and time
    assert imported_modules(path, toy_library) == {"latentedit.b.tool"}


def test_a_cycle_between_packages_is_found(toy_library):
    assert find_cycle(package_graph(toy_library)) is None
    (toy_library / "c.py").write_text("from latentedit.a import inner\n")  # a → b → c → a
    cycle = find_cycle(package_graph(toy_library))
    assert cycle is not None and cycle[0] == cycle[-1] and {"latentedit.a", "latentedit.c"} <= set(cycle)
